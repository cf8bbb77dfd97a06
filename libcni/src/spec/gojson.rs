//! JSON keys as Go's encoding/json matches them, which the configs in the field rely
//! on (`"IsGateway"`, `"Master"`, `"RangeStart"` all work with the Go plugins): a key
//! matches a field of the same spelling, otherwise one that is equal ignoring case;
//! when several keys of an object match one field, the last one wins. Unknown keys
//! stay ignored.
//!
//! Before a config or a result is deserialized, its keys are rewritten to the
//! spellings our types use: the top level against the type's own field names (read
//! from its `Deserialize` impl) and the common keys, nested objects against the
//! vocabulary of every nested structure the suite reads. Objects whose keys are data
//! (`capabilities`, `sysctl`, pod annotations) are left as they are.

use std::cell::Cell;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// The keys of the common part of a network configuration.
pub const COMMON_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "capabilities",
    "ipam",
    "dns",
    "args",
    "runtimeConfig",
    "prevResult",
];

/// The keys of the nested structures the suite reads from configs: `ipam`
/// (host-local, static), `args.cni` (also tuning's), `runtimeConfig`, ranges,
/// addresses, VLAN trunks, port mappings, bandwidth, GC attachments.
pub const NESTED_KEYS: &[&str] = &[
    "type",
    "ranges",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "routes",
    "dataDir",
    "resolvConf",
    "addresses",
    "address",
    "dns",
    "mtu",
    "cni",
    "ips",
    "mac",
    "ipRanges",
    "portMappings",
    "bandwidth",
    "aliases",
    "deviceID",
    "infinibandGUID",
    "cgroupPath",
    "CNIDeviceInfoFile",
    "hostPort",
    "containerPort",
    "protocol",
    "hostIP",
    "ingressRate",
    "ingressBurst",
    "egressRate",
    "egressBurst",
    "sysctl",
    "promisc",
    "allmulti",
    "txQLen",
    "minID",
    "maxID",
    "id",
    "containerID",
    "ifname",
];

/// The keys of a route and of DNS settings, in configs and results alike.
pub const ROUTE_AND_DNS_KEYS: &[&str] = &[
    "dst",
    "gw",
    "advmss",
    "priority",
    "table",
    "scope",
    "nameservers",
    "domain",
    "search",
    "options",
];

/// The keys of results (prevResult, delegated plugins' output), every version.
pub const RESULT_KEYS: &[&str] = &[
    "cniVersion",
    "interfaces",
    "ips",
    "routes",
    "dns",
    "ip4",
    "ip6",
    "name",
    "mac",
    "mtu",
    "sandbox",
    "socketPath",
    "pciID",
    "version",
    "address",
    "gateway",
    "interface",
];

/// Objects whose keys are data, never field names.
const DATA_KEYED: &[&str] = &[
    "capabilities",
    "sysctl",
    "io.kubernetes.cri.pod-annotations",
];

/// The field names `T`'s derived `Deserialize` asks for, when `T` is a plain struct
/// (empty for anything else, e.g. a struct with a flattened part).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(FieldNames(&fields));
    fields.get()
}

struct FieldNames<'a>(&'a Cell<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(de::Error::custom("only the field names are read"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
}

/// Rewrites the keys of `object` to the spelling in `fields` Go would match (exact
/// first, else ignoring case); of several keys that land on one field, the later
/// value wins. Keys that match nothing are kept as they are.
pub fn canonicalize_keys(object: &mut Map<String, Value>, fields: &[&[&str]]) {
    let needs_work = object.keys().any(|k| {
        !fields.iter().any(|set| set.contains(&k.as_str()))
            && fields
                .iter()
                .any(|set| set.iter().any(|f| f.eq_ignore_ascii_case(k)))
    });
    if !needs_work {
        return;
    }
    let mut out = Map::new();
    for (key, value) in std::mem::take(object) {
        let canonical = if fields.iter().any(|set| set.contains(&key.as_str())) {
            key
        } else {
            fields
                .iter()
                .flat_map(|set| set.iter())
                .find(|f| f.eq_ignore_ascii_case(&key))
                .map_or(key, |f| f.to_string())
        };
        // A later spelling of the same field replaces the earlier value.
        out.remove(&canonical);
        out.insert(canonical, value);
    }
    *object = out;
}

/// Canonicalizes nested objects and arrays below `value` with `vocabulary`.
fn canonicalize_nested(value: &mut Value, vocabulary: &[&[&str]]) {
    match value {
        Value::Object(object) => {
            canonicalize_keys(object, vocabulary);
            for (key, child) in object.iter_mut() {
                if !DATA_KEYED.contains(&key.as_str()) && key != "prevResult" {
                    canonicalize_nested(child, vocabulary);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| canonicalize_nested(item, vocabulary)),
        _ => {}
    }
}

/// A network configuration's keys as Go would read them into the common keys and
/// `plugin_fields` (see the module docs). prevResult is a result: see
/// [`canonicalize_result`].
pub fn canonicalize_config(value: &mut Value, plugin_fields: &[&str]) {
    let Value::Object(object) = value else {
        return;
    };
    canonicalize_keys(
        object,
        &[COMMON_KEYS, plugin_fields, NESTED_KEYS, ROUTE_AND_DNS_KEYS],
    );
    for (key, child) in object.iter_mut() {
        match key.as_str() {
            "prevResult" => canonicalize_result(child),
            k if DATA_KEYED.contains(&k) => {}
            _ => canonicalize_nested(child, &[NESTED_KEYS, ROUTE_AND_DNS_KEYS]),
        }
    }
}

/// A result's keys as Go would read them.
pub fn canonicalize_result(value: &mut Value) {
    canonicalize_nested(value, &[RESULT_KEYS, ROUTE_AND_DNS_KEYS]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Keys {
        #[serde(rename = "isGateway")]
        is_gateway: bool,
        #[serde(rename = "hairpinMode")]
        hairpin: bool,
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<Keys>(), ["isGateway", "hairpinMode"]);
        assert!(field_names::<Map<String, Value>>().is_empty());
    }

    #[test]
    fn keys_match_as_go_matches_them() {
        let mut v = json!({"IsGateway": true, "HAIRPINMODE": true, "Name": "n", "other": 1,
                           "ipam": {"Type": "host-local", "Ranges": [[{"Subnet": "10.0.0.0/24"}]]},
                           "capabilities": {"IPs": true},
                           "prevResult": {"IPs": [{"Address": "10.0.0.2/24"}]}});
        canonicalize_config(&mut v, field_names::<Keys>());
        assert_eq!(v["isGateway"], true);
        assert_eq!(v["hairpinMode"], true);
        assert_eq!(v["name"], "n");
        assert_eq!(v["other"], 1);
        assert_eq!(v["ipam"]["ranges"][0][0]["subnet"], "10.0.0.0/24");
        assert_eq!(v["ipam"]["type"], "host-local");
        assert_eq!(v["capabilities"]["IPs"], true, "data keys stay");
        assert_eq!(v["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
    }

    #[test]
    fn the_later_of_two_spellings_wins() {
        let mut v = json!({"isGateway": true, "IsGateway": false});
        canonicalize_config(&mut v, field_names::<Keys>());
        assert_eq!(v, json!({"isGateway": false}));
        let mut v = json!({"IsGateway": false, "isGateway": true});
        canonicalize_config(&mut v, field_names::<Keys>());
        assert_eq!(v, json!({"isGateway": true}));
    }
}
