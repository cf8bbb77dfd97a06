//! SR-IOV virtual functions, as their physical function reports and sets them.

use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState, VfVlan, VfVlanInfo,
    VlanProtocol,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{on_off, Cause, Netlink, NetlinkError, NlResult, RouteTransport, GET};
use crate::mac::MacAddr;

/// A VF's administrative link state (`ip link set ... vf N state ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VfLinkStateSetting {
    Auto,
    Enable,
    Disable,
}

/// The one table of link states: the name configs and `ip` use, the kernel's
/// value (IFLA_VF_LINK_STATE_*), and the message attribute.
const LINK_STATES: [(VfLinkStateSetting, &str, u32, VfLinkState); 3] = [
    (VfLinkStateSetting::Auto, "auto", 0, VfLinkState::Auto),
    (VfLinkStateSetting::Enable, "enable", 1, VfLinkState::Enable),
    (
        VfLinkStateSetting::Disable,
        "disable",
        2,
        VfLinkState::Disable,
    ),
];

impl VfLinkStateSetting {
    fn row(self) -> &'static (VfLinkStateSetting, &'static str, u32, VfLinkState) {
        LINK_STATES
            .iter()
            .find(|row| row.0 == self)
            .expect("every state is in the table")
    }

    /// `auto`, `enable` or `disable`.
    pub fn parse(name: &str) -> Option<VfLinkStateSetting> {
        LINK_STATES
            .iter()
            .find(|row| row.1 == name)
            .map(|row| row.0)
    }

    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The kernel's value, as VF state reads and caches store it.
    pub fn kernel_value(self) -> u32 {
        self.row().2
    }

    /// The setting of a kernel value; an unknown value reads as `auto`.
    pub fn from_kernel_value(value: u32) -> VfLinkStateSetting {
        LINK_STATES
            .iter()
            .find(|row| row.2 == value)
            .map_or(VfLinkStateSetting::Auto, |row| row.0)
    }
}

/// A VF's VLAN: the ID, the 802.1p priority and the tag's protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfVlanSetting {
    pub id: u32,
    pub qos: u32,
    /// 802.1ad (QinQ) instead of 802.1Q.
    pub proto_8021ad: bool,
}

/// A VF's transmit rate limits in Mbps (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfRate {
    pub min_mbps: u32,
    pub max_mbps: u32,
}

/// A VF's configuration as read from its PF.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VfState {
    pub vf: u32,
    /// The admin MAC (all zeros when none is set); `None` when the PF reports none.
    pub mac: Option<MacAddr>,
    pub vlan: u32,
    pub qos: u32,
    pub vlan_proto_8021ad: bool,
    pub spoofchk: bool,
    pub trust: bool,
    pub link_state: Option<u32>,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

/// Settings to apply to a VF; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VfConfig {
    pub vlan: Option<VfVlanSetting>,
    pub mac: Option<MacAddr>,
    pub rate: Option<VfRate>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkStateSetting>,
}

fn parse_vf(info: &LinkVfInfo) -> VfState {
    let mut state = VfState::default();
    for item in &info.0 {
        match item {
            VfInfo::Mac(m) => {
                state.vf = m.vf_id;
                state.mac = MacAddr::from_bytes(&m.mac[..6]);
            }
            VfInfo::Vlan(v) => {
                state.vlan = v.vlan_id;
                state.qos = v.qos;
            }
            VfInfo::VlanList(list) => {
                if let Some(VfVlan::Info(first)) = list.first() {
                    state.vlan_proto_8021ad = first.protocol == VlanProtocol::Ieee8021Ad;
                }
            }
            VfInfo::SpoofCheck(s) => state.spoofchk = s.enabled,
            VfInfo::Trust(t) => state.trust = t.enabled,
            VfInfo::LinkState(l) => {
                state.link_state = Some(match l.state {
                    VfLinkState::Other(n) => n,
                    known => LINK_STATES
                        .iter()
                        .find(|row| row.3 == known)
                        .map_or(0, |row| row.2),
                })
            }
            VfInfo::Rate(r) => {
                state.min_tx_rate = r.min_tx_rate;
                state.max_tx_rate = r.max_tx_rate;
            }
            _ => {}
        }
    }
    state
}

impl<T: RouteTransport> Netlink<T> {
    /// Every VF of a PF, read with RTEXT_FILTER_VF.
    pub fn get_vfs(&mut self, pf: u32, pf_name: &str) -> NlResult<Vec<VfState>> {
        let mut request = LinkMessage::default();
        request.header.index = pf;
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let replies = self.request(
            RouteNetlinkMessage::GetLink(request),
            GET,
            format!("read the VFs of PF {pf_name:?}"),
        )?;
        let mut vfs = Vec::new();
        for reply in replies {
            if let RouteNetlinkMessage::NewLink(link) = reply {
                for attr in link.attributes {
                    if let LinkAttribute::VfInfoList(list) = attr {
                        vfs.extend(list.iter().map(parse_vf));
                    }
                }
            }
        }
        Ok(vfs)
    }

    pub fn get_vf(&mut self, pf: u32, pf_name: &str, vf: u32) -> NlResult<VfState> {
        self.get_vfs(pf, pf_name)?
            .into_iter()
            .find(|s| s.vf == vf)
            .ok_or_else(|| {
                NetlinkError::new(
                    format!("find VF {vf} of PF {pf_name:?}"),
                    Cause::Errno(libc::ENOENT),
                )
            })
    }

    /// Applies the settings, one message per setting so that an error names it.
    pub fn set_vf(&mut self, pf: u32, pf_name: &str, vf: u32, config: &VfConfig) -> NlResult<()> {
        let mut steps: Vec<(String, VfInfo)> = Vec::new();
        if let Some(VfVlanSetting {
            id: vlan,
            qos,
            proto_8021ad,
        }) = config.vlan
        {
            if proto_8021ad {
                let mut info = VfVlanInfo::default();
                info.vf_id = vf;
                info.vlan_id = vlan;
                info.qos = qos;
                info.protocol = VlanProtocol::Ieee8021Ad;
                steps.push((
                    format!("vlan {vlan} qos {qos} proto 802.1ad"),
                    VfInfo::VlanList(vec![VfVlan::Info(info)]),
                ));
            } else {
                steps.push((
                    format!("vlan {vlan} qos {qos}"),
                    VfInfo::Vlan(VfInfoVlan::new(vf, vlan, qos)),
                ));
            }
        }
        if let Some(mac) = config.mac {
            steps.push((
                format!("mac {mac}"),
                VfInfo::Mac(VfInfoMac::new(vf, &mac.octets())),
            ));
        }
        if let Some(VfRate {
            min_mbps: min,
            max_mbps: max,
        }) = config.rate
        {
            steps.push((
                format!("min_tx_rate {min} max_tx_rate {max}"),
                VfInfo::Rate(VfInfoRate::new(vf, min, max)),
            ));
        }
        if let Some(on) = config.spoofchk {
            steps.push((
                format!("spoofchk {}", on_off(on)),
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            ));
        }
        if let Some(on) = config.trust {
            steps.push((
                format!("trust {}", on_off(on)),
                VfInfo::Trust(VfInfoTrust::new(vf, on)),
            ));
        }
        if let Some(state) = config.link_state {
            steps.push((
                format!("link_state {}", state.name()),
                VfInfo::LinkState(VfInfoLinkState::new(vf, state.row().3)),
            ));
        }
        for (what, info) in steps {
            let mut message = LinkMessage::default();
            message.header.index = pf;
            message
                .attributes
                .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]));
            self.change(
                RouteNetlinkMessage::SetLink(message),
                format!("set {what} on VF {vf} of PF {pf_name:?}"),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_is_its_own_message_on_the_pf() {
        let mut nl = Netlink::fake();
        let config = VfConfig {
            vlan: Some(VfVlanSetting {
                id: 100,
                qos: 3,
                proto_8021ad: false,
            }),
            mac: Some(MacAddr([2, 0, 0, 0, 0, 7])),
            spoofchk: Some(false),
            trust: Some(true),
            link_state: Some(VfLinkStateSetting::Enable),
            rate: Some(VfRate {
                min_mbps: 10,
                max_mbps: 100,
            }),
        };
        nl.set_vf(4, "ens1f0", 2, &config).unwrap();
        assert_eq!(nl.transport.sent.len(), 6);
        for super::super::Operation { message, .. } in &nl.transport.sent {
            let RouteNetlinkMessage::SetLink(m) = message else {
                panic!()
            };
            assert_eq!(m.header.index, 4);
        }
        let RouteNetlinkMessage::SetLink(first) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(
            first.attributes[0],
            LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![VfInfo::Vlan(VfInfoVlan::new(
                2, 100, 3
            ))])])
        );
    }

    #[test]
    fn a_failed_setting_is_named() {
        let mut nl = Netlink::fake();
        nl.transport.fail(libc::EOPNOTSUPP);
        let e = nl
            .set_vf(
                4,
                "ens1f0",
                2,
                &VfConfig {
                    trust: Some(true),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to set trust on on VF 2 of PF \"ens1f0\": EOPNOTSUPP"),
            "{e}"
        );
    }

    #[test]
    fn vf_state_is_read_with_the_vf_filter() {
        let mut reply = LinkMessage::default();
        reply
            .attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(1, &[2, 0, 0, 0, 0, 1])),
                VfInfo::Vlan(VfInfoVlan::new(1, 10, 2)),
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(1, true)),
                VfInfo::Trust(VfInfoTrust::new(1, false)),
                VfInfo::Rate(VfInfoRate::new(1, 0, 500)),
                VfInfo::LinkState(VfInfoLinkState::new(1, VfLinkState::Disable)),
            ])]));
        let mut nl = Netlink::fake();
        nl.transport
            .reply(vec![RouteNetlinkMessage::NewLink(reply)]);
        let vf = nl.get_vf(4, "pf0", 1).unwrap();
        assert_eq!(vf.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(
            (
                vf.vlan,
                vf.qos,
                vf.spoofchk,
                vf.trust,
                vf.max_tx_rate,
                vf.link_state
            ),
            (10, 2, true, false, 500, Some(2))
        );
        let RouteNetlinkMessage::GetLink(request) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert!(request
            .attributes
            .contains(&LinkAttribute::ExtMask(vec![LinkExtentMask::Vf])));
    }
}
