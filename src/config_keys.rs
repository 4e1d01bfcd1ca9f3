//! The keys the config file accepts, read from the serde definitions
//! themselves, so that sidus.toml(5) can be checked against the code.
//!
//! [`keys`] deserializes a [`Config`] from a recorder that answers every
//! struct with all of its field names (serde hands them to
//! `deserialize_struct`) and every value with a placeholder, and notes the
//! dotted path of each field. A key added to any section, by any branch, is
//! therefore listed without anyone keeping a second list.

use crate::config::Config;
use serde::de::{self, value::Error, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Every key of the config file as a dotted path (`lock_timeout_secs`,
/// `btrfs.path`, `publish.clients`), sorted; sections themselves (`btrfs`)
/// are not keys. A key whose value is a table of free-form names (a map) is
/// listed as `SECTION.*`.
pub fn keys() -> Result<Vec<String>, Error> {
    let seen = Seen::default();
    Config::deserialize(Recorder {
        path: String::new(),
        seen: &seen,
    })?;
    let tables = seen.tables.into_inner();
    Ok(seen
        .keys
        .into_inner()
        .into_iter()
        .filter(|k| !tables.contains(k))
        .collect())
}

#[derive(Default)]
struct Seen {
    keys: RefCell<BTreeSet<String>>,
    tables: RefCell<BTreeSet<String>>,
}

/// Deserializes any value at `path`, recording the fields of structs.
struct Recorder<'a> {
    path: String,
    seen: &'a Seen,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        if !self.path.is_empty() {
            self.seen.tables.borrow_mut().insert(self.path.clone());
        }
        v.visit_map(Fields {
            fields: fields.iter(),
            current: "",
            path: self.path,
            seen: self.seen,
        })
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // A table of free-form names: its entries are documented as a pattern.
        self.seen.tables.borrow_mut().insert(self.path.clone());
        self.seen.keys.borrow_mut().insert(join(&self.path, "*"));
        v.visit_map(de::value::MapDeserializer::new(
            std::iter::empty::<((), ())>(),
        ))
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or_default();
        v.visit_enum(first.into_deserializer())
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(1.0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f32(1.0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // A plausible word: newtypes that check their text (tree names) accept it.
        v.visit_str("x")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("x")
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()))
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i128 u128 char bytes byte_buf unit_struct tuple tuple_struct
        identifier ignored_any
    }
}

/// The fields of one struct, each yielded once with a recorded value.
struct Fields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
    path: String,
    seen: &'a Seen,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        self.seen.keys.borrow_mut().insert(join(&self.path, field));
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Recorder {
            path: join(&self.path, self.current),
            seen: self.seen,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_cover_every_section() {
        let keys = super::keys().unwrap();
        for k in [
            "backend",
            "lock_timeout_secs",
            "btrfs.path",
            "btrfs.loop_file",
            "zfs.dataset",
            "lvm.max_pool_use_percent",
            "prune.keep_hourly",
            "publish.server",
            "publish.clients",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
        }
        assert!(
            !keys.iter().any(|x| x == "btrfs" || x == "publish"),
            "{keys:?}"
        );
    }
}
