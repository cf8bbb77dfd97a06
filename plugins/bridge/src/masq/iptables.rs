//! The iptables backend: chain `CNI-<hash of network and container ID>` in table
//! nat, jumped to from POSTROUTING for each source address (Go's `pkg/ip` names).
//! Request values reach iptables only as separate arguments, never through a shell.

use std::process::Command;

use ipnet::IpNet;
use libcni::netlink::nftables::{Family, Nftables};
use libcni::spec::attachment::AttachmentId;

/// Runs `iptables -w` (or `ip6tables`) with `args`; its output, or its error.
fn iptables(v4: bool, args: &[&str]) -> Result<String, String> {
    let binary = if v4 { "iptables" } else { "ip6tables" };
    let out = Command::new(binary)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{binary} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Adds the chain and its rules for each address, each only when missing.
pub fn setup(addresses: &[IpNet], id: &AttachmentId) -> Result<(), String> {
    let chain = id.iptables_chain();
    let comment = id.iptables_comment();
    for address in addresses {
        let v4 = address.addr().is_ipv4();
        if iptables(v4, &["-t", "nat", "-S", &chain]).is_err() {
            iptables(v4, &["-t", "nat", "-N", &chain])?;
        }
        for (target, rule, _) in missing_rules(address, &chain, &comment) {
            let mut append = vec!["-t", "nat", "-A", target];
            append.extend(rule.iter().map(String::as_str));
            iptables(v4, &append)?;
        }
    }
    Ok(())
}

/// Proves, for CHECK, that the chain and Go's three rules of every address are in
/// place. Reads only (`-S`, `-C`); the error names the first thing missing.
pub fn verify(addresses: &[IpNet], id: &AttachmentId) -> Result<(), String> {
    let chain = id.iptables_chain();
    let comment = id.iptables_comment();
    for address in addresses {
        let v4 = address.addr().is_ipv4();
        if let Err(why) = iptables(v4, &["-t", "nat", "-S", &chain]) {
            return Err(format!(
                "the iptables masquerade chain nat {chain} of {address} is missing ({why})"
            ));
        }
        if let Some((target, rule, why)) = missing_rules(address, &chain, &comment).first() {
            return Err(format!(
                "the iptables masquerade rule of {address} is missing: nat {target} {} ({why})",
                rule.join(" ")
            ));
        }
    }
    Ok(())
}

/// Go's rules for `address` that iptables does not hold, each with the chain it
/// goes in and iptables' answer to `-C` (which only reads).
fn missing_rules<'a>(
    address: &IpNet,
    chain: &'a str,
    comment: &'a str,
) -> Vec<(&'a str, Vec<String>, String)> {
    let v4 = address.addr().is_ipv4();
    rules(address, chain, comment)
        .into_iter()
        .filter_map(|(target, rule)| {
            let mut check = vec!["-t", "nat", "-C", target];
            check.extend(rule.iter().map(String::as_str));
            iptables(v4, &check).err().map(|why| (target, rule, why))
        })
        .collect()
}

/// Go's three rules for `address`, each with the chain it goes in: accept its own
/// subnet, masquerade what is not multicast, and the POSTROUTING jump into `chain`.
fn rules<'a>(address: &IpNet, chain: &'a str, comment: &'a str) -> [(&'a str, Vec<String>); 3] {
    let multicast = if address.addr().is_ipv4() {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    };
    let subnet = IpNet::new(address.network(), address.prefix_len())
        .expect("valid")
        .to_string();
    let with_comment = |words: &[&str]| -> Vec<String> {
        let mut words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        words.extend(["-m", "comment", "--comment", comment].map(String::from));
        words
    };
    [
        (chain, with_comment(&["-d", &subnet, "-j", "ACCEPT"])),
        (
            chain,
            with_comment(&["!", "-d", multicast, "-j", "MASQUERADE"]),
        ),
        (
            "POSTROUTING",
            with_comment(&["-s", &address.addr().to_string(), "-j", chain]),
        ),
    ]
}

/// Whether iptables may hold `chain`, asked without running iptables: iptables-nft
/// keeps its rules in nf_tables tables `ip nat` and `ip6 nat`; the legacy backend is
/// only there when its nat table is loaded.
pub fn chain_may_exist(nft: &mut Nftables, chain: &str) -> bool {
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|names| names.lines().any(|n| n == "nat"))
        || std::fs::read_to_string("/proc/net/ip6_tables_names")
            .is_ok_and(|names| names.lines().any(|n| n == "nat"));
    legacy
        || [Family::Ip, Family::Ip6].into_iter().any(|family| {
            nft.chains(family, "nat")
                .map(|chains| chains.unwrap_or_default().iter().any(|c| c == chain))
                .unwrap_or(true)
        })
}

/// Runs an iptables removal. When it fails because what it removes is gone (`gone`
/// asks iptables again), another teardown of the attachment came first: success.
fn iptables_remove(v4: bool, args: &[&str], gone: impl Fn() -> bool) -> Result<(), String> {
    match iptables(v4, args) {
        Err(_) if gone() => Ok(()),
        other => other.map(drop),
    }
}

/// Removes the POSTROUTING jumps of `addresses` into the attachment's chain, and
/// the chain once no jump into it is left. Two interfaces of one container on one
/// network share Go's chain, so another address's jump (and the chain with it) stays,
/// with a warning. Without addresses (DEL with no prevResult, after the netns is
/// gone) every jump into the chain goes.
pub fn teardown(id: &AttachmentId, addresses: &[IpNet]) -> Result<(), String> {
    let chain = id.iptables_chain();
    for v4 in [true, false] {
        let Ok(rules) = iptables(v4, &["-t", "nat", "-S", "POSTROUTING"]) else {
            continue;
        };
        let mut others = 0;
        for line in rules.lines().filter(|l| l.contains(&format!("-j {chain}"))) {
            let Some(spec) = line.strip_prefix("-A POSTROUTING ") else {
                continue;
            };
            let words = shell_words(spec);
            if !addresses.is_empty() && !jumps_from_one_of(&words, addresses) {
                others += 1;
                continue;
            }
            let mut args = vec!["-t", "nat", "-D", "POSTROUTING"];
            args.extend(words.iter().map(String::as_str));
            iptables_remove(v4, &args, || {
                iptables(v4, &["-t", "nat", "-S", "POSTROUTING"])
                    .is_ok_and(|now| !now.lines().any(|l| l == line))
            })?;
        }
        if others > 0 {
            libcni::log_warn!(
                "left iptables chain nat {chain}: POSTROUTING still jumps to it from {others} other address(es) of container {}",
                id.container_id
            );
            continue;
        }
        let chain_gone = || iptables(v4, &["-t", "nat", "-S", &chain]).is_err();
        if !chain_gone() {
            iptables_remove(v4, &["-t", "nat", "-F", &chain], chain_gone)?;
            iptables_remove(v4, &["-t", "nat", "-X", &chain], chain_gone)?;
        }
    }
    Ok(())
}

/// Whether a POSTROUTING rule's `-s` source is one of `addresses`.
fn jumps_from_one_of(words: &[String], addresses: &[IpNet]) -> bool {
    let source = words
        .windows(2)
        .find(|w| w[0] == "-s")
        .and_then(|w| w[1].parse::<IpNet>().ok());
    source.is_some_and(|source| addresses.iter().any(|a| a.addr() == source.addr()))
}

/// Splits an `iptables -S` rule into arguments (double quotes group, `\"` escapes).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut in_word) = (false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            _ => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Whether an iptables binary runs at all.
pub fn installed() -> bool {
    Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether iptables works on this host (the Go plugin's probe for its default).
pub fn works() -> bool {
    Command::new("iptables")
        .args(["-t", "filter", "-S", "INPUT", "1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_rule_words() {
        assert_eq!(
            shell_words(
                r#"-s 10.1.0.5/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-abc"#
            ),
            vec![
                "-s",
                "10.1.0.5/32",
                "-m",
                "comment",
                "--comment",
                "name: \"n\" id: \"c\"",
                "-j",
                "CNI-abc"
            ]
        );
    }
}
