//! Property tests of the numbers pipeline's line parser (`vmbook::numbers::sum_line`), against a
//! reference implementation written as plainly as possible from the module's documented rules.
//! The case count is small (`PROPTEST_CASES` raises it); failing cases are kept by proptest in
//! `tests/parser_props.proptest-regressions`, which is the whole corpus.

use proptest::prelude::*;
use vmbook::numbers::{sum_line, LineError, LineSum, TOKEN_SHOWN};

/// The rules of `vmbook::numbers`, one at a time, with nothing clever.
fn reference(line: &[u8], max_len: usize) -> Result<LineSum, LineError> {
    let mut line = line.to_vec();
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.len() > max_len {
        return Err(LineError::TooLong {
            len: line.len(),
            max: max_len,
        });
    }
    let separator = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0C' | b'\r');
    let tokens: Vec<&[u8]> = line.split(separator).filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Err(LineError::Empty);
    }
    let mut sum: i128 = 0;
    for (i, token) in tokens.iter().enumerate() {
        let text = String::from_utf8_lossy(token).into_owned();
        let shown = if text.chars().count() > TOKEN_SHOWN {
            text.chars().take(TOKEN_SHOWN).collect::<String>() + "…"
        } else {
            text.clone()
        };
        let (sign, digits) = match token[0] {
            b'-' => (-1i128, &token[1..]),
            b'+' => (1, &token[1..]),
            _ => (1, &token[..]),
        };
        if digits.is_empty() || !digits.iter().all(|d| d.is_ascii_digit()) {
            return Err(LineError::NotANumber {
                token: i + 1,
                text: shown,
            });
        }
        // Digit by digit, saturating well outside i64 so that any length is safe.
        let mut value: i128 = 0;
        for d in digits {
            value = (value * 10 + i128::from(d - b'0')).min(i128::from(u64::MAX) * 4);
        }
        let value = sign * value;
        if value < i128::from(i64::MIN) || value > i128::from(i64::MAX) {
            return Err(LineError::NumberOutOfRange {
                token: i + 1,
                text: shown,
            });
        }
        sum += value;
    }
    match i64::try_from(sum) {
        Ok(sum) => Ok(LineSum {
            sum,
            count: tokens.len(),
        }),
        Err(_) => Err(LineError::SumOverflow {
            count: tokens.len(),
        }),
    }
}

/// Tokens that look like what people type, and what they mistype.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        (-1000i64..1000).prop_map(|n| format!("{n:+}").into_bytes()),
        Just(i64::MAX.to_string().into_bytes()),
        Just(i64::MIN.to_string().into_bytes()),
        Just(b"9223372036854775808".to_vec()),
        Just(b"-9223372036854775809".to_vec()),
        "[0-9]{1,30}".prop_map(String::into_bytes),
        "[-+]?[0-9a-fx._e]{0,6}".prop_map(String::into_bytes),
        "\\PC{1,30}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..8),
    ]
}

fn separator() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b' '),
            Just(b'\t'),
            Just(b'\x0C'),
            Just(b'\r'),
            Just(b'\x0B')
        ],
        1..3,
    )
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((token(), separator()), 0..8),
        prop_oneof![Just(&b""[..]), Just(&b"\n"[..]), Just(&b"\r\n"[..])],
    )
        .prop_map(|(parts, ending)| {
            let mut line: Vec<u8> = parts
                .into_iter()
                .flat_map(|(t, s)| t.into_iter().chain(s))
                .collect();
            line.extend_from_slice(ending);
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_agrees_with_the_reference(line in line(), max_len in prop_oneof![Just(usize::MAX), 0usize..200]) {
        prop_assert_eq!(sum_line(&line, max_len), reference(&line, max_len), "line {:?}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn any_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(sum_line(&line, 100), reference(&line, 100));
    }

    #[test]
    fn a_sum_of_i64_numbers_is_their_sum(numbers in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 1..20)) {
        let text: Vec<String> = numbers.iter().map(i64::to_string).collect();
        let got = sum_line(text.join(" ").as_bytes(), usize::MAX);
        prop_assert_eq!(got, Ok(LineSum { sum: numbers.iter().sum(), count: numbers.len() }));
    }
}
