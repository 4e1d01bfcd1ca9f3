//! Ethernet addresses of nodes: parsed from the spellings admins paste
//! (`52:54:00:12:34:56`, `52-54-00-12-34-56`, `5254.0012.3456`,
//! `525400123456`, any case) and kept in one canonical form, lower-case hex
//! separated by colons. iPXE's `${mac:hexhyp}` and PXELINUX's `01-<mac>`
//! spell the same bytes with hyphens, lower case (NOTES-next §3).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A node's MAC address: six bytes, unicast, not all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac([u8; 6]);

impl Mac {
    /// `52-54-00-12-34-56`: iPXE's `${mac:hexhyp}`, the name of the node's entries.
    pub fn hexhyp(&self) -> String {
        self.join('-')
    }

    fn join(&self, sep: char) -> String {
        let mut s = String::with_capacity(17);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(sep);
            }
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let bad =
            |why: &str| format!("bad MAC '{s}': {why} (six hex bytes, e.g. 52:54:00:12:34:56)");
        let t = s.trim();
        let digits: String = if t.contains([':', '-']) {
            let parts: Vec<&str> = t.split([':', '-']).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
                return Err(bad("not six bytes"));
            }
            parts.iter().map(|p| format!("{p:0>2}")).collect()
        } else if t.contains('.') {
            let parts: Vec<&str> = t.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return Err(bad("not three groups of four hex digits"));
            }
            parts.concat()
        } else {
            t.to_string()
        };
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not hex"));
        }
        let mut b = [0u8; 6];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        if b == [0; 6] {
            return Err(bad("all zero"));
        }
        if b[0] & 1 == 1 {
            return Err(bad("a multicast or broadcast address, not a NIC's"));
        }
        Ok(Mac(b))
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Mac, String> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl fmt::Display for Mac {
    /// The canonical form, `52:54:00:12:34:56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join(':'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_parse_to_one_canonical_form() {
        for s in [
            "52:54:00:12:34:56",
            "52-54-00-12-34-56",
            "52:54:0:12:34:56",
            "5254.0012.3456",
            "525400123456",
            " 52:54:00:12:34:56 ",
            "52:54:00:12:34:56".to_uppercase().as_str(),
        ] {
            let m: Mac = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(m.to_string(), "52:54:00:12:34:56", "{s}");
            assert_eq!(m.hexhyp(), "52-54-00-12-34-56");
        }
    }

    #[test]
    fn bad_macs_say_why() {
        let table = [
            ("", "not hex"),
            ("52:54:00:12:34", "not six bytes"),
            ("52:54:00:12:34:56:78", "not six bytes"),
            ("52:54::12:34:56", "not six bytes"),
            ("52:54:00:12:34:5g", "not hex"),
            ("5254.0012.345", "not three groups"),
            ("00:00:00:00:00:00", "all zero"),
            ("ff:ff:ff:ff:ff:ff", "multicast"),
            ("01:00:5e:00:00:01", "multicast"),
            ("52:54:00:123:4:56", "not six bytes"),
        ];
        for (s, want) in table {
            let e = s.parse::<Mac>().unwrap_err();
            assert!(
                e.contains(want) && e.contains(&format!("'{s}'")),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn json_is_the_canonical_string() {
        let m: Mac = "52-54-00-AB-CD-EF".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"52:54:00:ab:cd:ef\"");
        let back: Mac = serde_json::from_str("\"52:54:00:ab:cd:ef\"").unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<Mac>("\"nope\"").is_err());
    }
}
