//! CORE-11: the schema of each validated type accepts exactly what its `parse` accepts, so a
//! request valid by the document is never refused for its shape, nor an invalid one accepted.

use conclave_core::credential::Cidr;
use conclave_core::password::NewPassword;
use conclave_core::totp::{SecondFactorCode, TotpCode};
use conclave_core::types::{DisplayName, Email, IdempotencyKey, MessageText, Name, Username};
use proptest::prelude::*;
use serde_json::Value;
use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use utoipa::PartialSchema;

/// Whether the schema of `T` accepts `s` (validators are compiled once per type and thread).
fn accepts<T: PartialSchema + 'static>() -> impl Fn(&str) -> bool {
    thread_local! {
        static VALIDATORS: RefCell<HashMap<TypeId, Rc<jsonschema::Validator>>> = RefCell::default();
    }
    let validator = VALIDATORS.with_borrow_mut(|cache| {
        cache
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let schema = serde_json::to_value(T::schema()).unwrap();
                Rc::new(jsonschema::validator_for(&schema).expect("a valid schema"))
            })
            .clone()
    });
    move |s| validator.is_valid(&Value::String(s.to_owned()))
}

/// Characters that sit on the edges of the rules: white space (trimmed or not, control or
/// not), controls, NUL, separators, non-ASCII letters, an astral character.
const TRICKY: &str =
    "[a-zA-Z0-9_.:@/ \\-\t\n\u{b}\u{1}\u{0}\u{1c}\u{7f}\u{85}\u{a0}\u{3000}\u{feff}\u{180e}é😀]";

fn tricky(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::string::string_regex(TRICKY).unwrap(), len)
        .prop_map(|v| v.concat())
}

/// A string of `len` letters with white space around it.
fn padded(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (
        "[ \t\u{85}\u{3000}]{0,3}",
        "[a-zé]{1}",
        len,
        "[ \t\u{85}]{0,3}",
    )
        .prop_map(|(a, c, n, b)| format!("{a}{}{b}", c.repeat(n)))
}

macro_rules! agree {
    ($t:ty, $s:expr) => {{
        let ok = accepts::<$t>()($s);
        prop_assert_eq!(ok, <$t>::parse($s).is_ok(), "{} {:?}", stringify!($t), $s);
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn text_types(s in tricky(0..12)) {
        agree!(Username, &s);
        agree!(DisplayName, &s);
        agree!(Name, &s);
        agree!(Email, &s);
        agree!(MessageText, &s);
        agree!(IdempotencyKey, &s);
    }

    #[test]
    fn lengths(s in padded(60..110)) {
        agree!(DisplayName, &s);
        agree!(Name, &s);
        agree!(Username, &s);
    }

    #[test]
    fn emails(local in tricky(0..4), domain in tricky(0..4), pad in padded(250..256)) {
        agree!(Email, &format!("{local}@{domain}"));
        agree!(Email, &format!("{}@{domain}", pad.trim()));
        agree!(Email, &format!(" {local}@x\t"));
    }

    #[test]
    fn codes(s in "[-0-9a-zA-Z \t\n]{0,24}", digits in "[0-9]{6}", recovery in "[0-9a-zA-Z]{16}") {
        agree!(SecondFactorCode, &s);
        for code in [digits.clone(), format!("{} {}", &digits[..3], &digits[3..]), recovery.clone(),
                     format!("{}-{}", &recovery[..8], &recovery[8..])] {
            agree!(SecondFactorCode, &code);
            let totp = matches!(SecondFactorCode::parse(&code), Ok(SecondFactorCode::Totp(_)));
            prop_assert_eq!(accepts::<TotpCode>()(&code), totp, "TotpCode {:?}", code);
        }
    }

    #[test]
    fn cidrs(v4 in any::<std::net::Ipv4Addr>(), v6 in any::<std::net::Ipv6Addr>(),
             p4 in 0u8..40, p6 in 0u8..140, junk in tricky(0..6), groups in 0usize..6) {
        let mapped = v4.to_ipv6_mapped();
        let head = v6.segments()[..groups].iter().map(|g| format!("{g:x}:")).collect::<String>();
        for s in [v4.to_string(), v6.to_string(), format!("{v4}/{p4}"), format!("{v6}/{p6}"),
                  mapped.to_string(), format!("{head}:{v4}"), format!("{head}{v4}"),
                  format!(" {v4}\t"), format!("{v4}{junk}"), format!("{v6}{junk}"), junk.clone()] {
            agree!(Cidr, &s);
        }
    }

    #[test]
    fn passwords(s in "[12#é ß]{10,14}", c in "[a-z0-9 é]") {
        // The common-password list is not in the schema: only compare outside it.
        let ok = accepts::<NewPassword>()(&s);
        match NewPassword::parse(&s) {
            Ok(_) => prop_assert!(ok, "{:?}", s),
            Err(r) if r.code == "too_common" && s.chars().any(|x| !s.starts_with(x)) => {}
            Err(_) => prop_assert!(!ok, "{:?}", s),
        }
        let same = c.repeat(12);
        prop_assert!(!accepts::<NewPassword>()(&same) && NewPassword::parse(&same).is_err());
    }
}

#[test]
fn boundaries() {
    let text = |n: usize| "a".repeat(n);
    for (n, ok) in [(0, false), (1, true), (4000, true), (4001, false)] {
        assert_eq!(accepts::<MessageText>()(&text(n)), ok, "{n}");
        assert_eq!(MessageText::parse(&text(n)).is_ok(), ok, "{n}");
    }
    // Message length counts every character, white space included.
    assert!(accepts::<MessageText>()(&format!(" {} ", text(3998))));
    assert!(MessageText::parse(&format!(" {} ", text(3998))).is_ok());
    assert!(!accepts::<MessageText>()(&format!(" {} ", text(3999))));
    assert!(!accepts::<MessageText>()(" \u{3000}\t"));
    for (n, ok) in [(64, true), (65, false)] {
        let padded = format!(" \u{85}{}\t ", text(n));
        assert_eq!(accepts::<DisplayName>()(&padded), ok, "{n}");
        assert_eq!(DisplayName::parse(&padded).is_ok(), ok, "{n}");
    }
    for (n, ok) in [(11, false), (12, true), (1024, true), (1025, false)] {
        let p = format!("ab{}", "c".repeat(n - 2));
        assert_eq!(accepts::<NewPassword>()(&p), ok, "{n}");
        assert_eq!(NewPassword::parse(&p).is_ok(), ok, "{n}");
    }
}
