use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

#[test]
fn bep3_examples_decode() {
    // The examples of BEP 3's "bencoding" section.
    assert_eq!(Value::decode(b"4:spam"), Ok(Value::str("spam")));
    assert_eq!(Value::decode(b"0:"), Ok(Value::str("")));
    assert_eq!(Value::decode(b"i3e"), Ok(Value::Int(3)));
    assert_eq!(Value::decode(b"i-3e"), Ok(Value::Int(-3)));
    assert_eq!(Value::decode(b"i0e"), Ok(Value::Int(0)));
    assert_eq!(
        Value::decode(b"l4:spam4:eggse"),
        Ok(Value::strs(&["spam", "eggs"]))
    );
    let d = Value::decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
    assert_eq!(d.get("cow"), Some(&Value::str("moo")));
    assert_eq!(d.get("spam"), Some(&Value::str("eggs")));
    let d = Value::decode(b"d4:spaml1:a1:bee").unwrap();
    assert_eq!(d.get("spam"), Some(&Value::strs(&["a", "b"])));
}

#[test]
fn non_canonical_numbers_are_refused() {
    for bad in [
        &b"i-0e"[..],
        b"i03e",
        b"ie",
        b"i-e",
        b"i1x2e",
        b"01:a",
        b"d01:ai1ee",
    ] {
        assert!(
            matches!(Value::decode(bad), Err(BencodeError::Number(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn structure_errors() {
    assert_eq!(Value::decode(b"5:spam"), Err(BencodeError::Truncated(6)));
    assert_eq!(Value::decode(b"l4:spam"), Err(BencodeError::Truncated(7)));
    assert_eq!(Value::decode(b"i1ei2e"), Err(BencodeError::Trailing(3)));
    assert_eq!(Value::decode(b"di1ei2ee"), Err(BencodeError::Key(1)));
    assert_eq!(
        Value::decode(b"x"),
        Err(BencodeError::Unexpected { byte: b'x', at: 0 })
    );
    assert_eq!(Value::decode(b""), Err(BencodeError::Truncated(0)));
    assert_eq!(
        Value::decode(b"-1:a"),
        Err(BencodeError::Unexpected { byte: b'-', at: 0 })
    );
    let deep = [vec![b'l'; MAX_DEPTH + 2], vec![b'e'; MAX_DEPTH + 2]].concat();
    assert_eq!(Value::decode(&deep), Err(BencodeError::TooDeep));
    let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
    assert!(Value::decode(&ok).is_ok());
}

#[test]
fn encoding_sorts_keys() {
    let mut map = BTreeMap::new();
    map.insert(b"spam".to_vec(), Value::str("eggs"));
    map.insert(b"cow".to_vec(), Value::Int(-12));
    map.insert(b"list".to_vec(), Value::strs(&["a", ""]));
    assert_eq!(
        enc(&Value::Dict(map)),
        b"d3:cowi-12e4:listl1:a0:e4:spam4:eggse".to_vec()
    );
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..8
            )
            .prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn round_trips(v in value()) {
        prop_assert_eq!(Value::decode(&enc(&v)), Ok(v));
    }

    #[test]
    fn never_panics_and_reencodes_stably(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Whatever decodes encodes to a value that decodes to itself (keys may come unsorted
        // from a peer, so the bytes themselves need not match).
        if let Ok(v) = Value::decode(&bytes) {
            prop_assert_eq!(Value::decode(&enc(&v)), Ok(v));
        }
    }
}
