//! The numbers pipeline of seed 001 (chapters 7 and 9, POSIX shared memory and Synchronization):
//! a parent passes lines of numbers through shared memory to a child, which sums each line. This
//! module holds the two pieces both chapters use: the line parser, and the fixed layout of the
//! one-line slot that sits in shared memory.
//!
//! # The parser: [`sum_line`]
//!
//! `sum_line(line: &[u8], max_len: usize) -> Result<LineSum, LineError>` is a pure function.
//!
//! * **The line.** Bytes, not necessarily UTF-8. One trailing `\n`, and then one trailing `\r`,
//!   are stripped first; the *length* of the line is what remains, in bytes.
//! * **Length.** If that length is greater than `max_len`: `Err(TooLong { len, max })`, checked
//!   before anything else.
//! * **Tokens.** The line is split on ASCII whitespace (`u8::is_ascii_whitespace`: space, `\t`,
//!   `\n`, `\x0C`, `\r`; not `\x0B`). Tokens are numbered from 1, left to right.
//! * **A number** is an optional `+` or `-` followed by one or more ASCII digits `0-9`, nothing
//!   else (`007`, `+5` and `-0` are numbers; `1e3`, `0x10`, `1_000`, `-`, `٣` are not).
//! * **Errors, first one wins, left to right:** a token that is not a number:
//!   `Err(NotANumber { token, text })`; a number outside `i64`: `Err(NumberOutOfRange { token,
//!   text })`. `text` is the token (lossy UTF-8), cut to [`TOKEN_SHOWN`] characters with `…` added.
//! * **Sum.** Computed exactly (in `i128`); if the true sum does not fit in `i64`:
//!   `Err(SumOverflow { count })`. So `Ok` holds exactly when every token is an `i64` and the true
//!   sum fits in `i64`, whatever order the numbers come in (`i64::MAX 1 -1` sums to `i64::MAX`).
//! * **Empty.** A line with no tokens (empty, or only whitespace): `Err(Empty)`. Whether that is
//!   bad input is the caller's choice; the pipeline reports it as a bad line.
//! * `Ok(LineSum { sum, count })`: `count >= 1` is the number of tokens.
//!
//! [`LineError`] implements `Display` as a short phrase without the line number
//! (`not a number: "12x" (token 2)`); callers prefix `line N: `.
//!
//! [`read_line_bounded`] reads one line from a `BufRead` without its line ending, keeping at most
//! a given number of bytes in memory, and returns the line's full length: an overlong line is
//! measured, never stored. [`sum_slot_line`] is the child's side: `TooLong` from that full length,
//! else `sum_line`.
//!
//! # The slot: [`LineSlot`]
//!
//! 4096 bytes (`repr(C)`; one page where pages are 4 KiB), placed at offset 0 of a shared mapping:
//! a `state` word for the protocol of the chapter that uses it, the line's number and full length,
//! the time it was published, and up to
//! [`SLOT_CAPACITY`] bytes of its text. Every field is an atomic, so the slot is safe Rust even if
//! a protocol is wrong: a broken protocol gives torn text, never undefined behavior. The bytes are
//! copied with `Relaxed` stores and loads; the protocol's `state` store (`Release`) and load
//! (`Acquire`) are what make the text written before the store visible after the load.
//! All-zero memory (a fresh `ftruncate`d object) is a valid, empty slot.

use std::fmt;
use std::io::BufRead;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The most characters of a bad token an error message shows.
pub const TOKEN_SHOWN: usize = 24;

/// One line's sum and how many numbers it had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSum {
    pub sum: i64,
    pub count: usize,
}

/// What was wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line (without its newline) is `len` bytes, more than the limit `max`.
    TooLong { len: usize, max: usize },
    /// Token number `token` (from 1) is not a number; `text` is what it was.
    NotANumber { token: usize, text: String },
    /// Token number `token` is a number that does not fit in an i64.
    NumberOutOfRange { token: usize, text: String },
    /// The sum of the line's `count` numbers does not fit in an i64.
    SumOverflow { count: usize },
    /// The line holds no numbers at all.
    Empty,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { len, max } => {
                write!(f, "line too long: {len} bytes, the limit is {max}")
            }
            LineError::NotANumber { token, text } => {
                write!(f, "not a number: {text:?} (token {token})")
            }
            LineError::NumberOutOfRange { token, text } => {
                write!(f, "number out of range for i64: {text:?} (token {token})")
            }
            LineError::SumOverflow { count } => {
                write!(f, "sum of its {count} numbers overflows i64")
            }
            LineError::Empty => write!(f, "empty line: no numbers"),
        }
    }
}

impl std::error::Error for LineError {}

/// The line without one trailing `\n` and then one trailing `\r`.
pub fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

// ANCHOR: sum_line
/// Sums one line of whitespace-separated integers (see the module documentation for the rules).
pub fn sum_line(line: &[u8], max_len: usize) -> Result<LineSum, LineError> {
    let line = strip_newline(line);
    if line.len() > max_len {
        return Err(LineError::TooLong {
            len: line.len(),
            max: max_len,
        });
    }
    let mut sum: i128 = 0;
    let mut count = 0;
    for (index, token) in line
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let value = parse_number(token).map_err(|out_of_range| {
            let (token, text) = (index + 1, shown(token));
            if out_of_range {
                LineError::NumberOutOfRange { token, text }
            } else {
                LineError::NotANumber { token, text }
            }
        })?;
        // Exact: at most one i64 per two bytes of line, far from i128's limits.
        sum += i128::from(value);
        count += 1;
    }
    if count == 0 {
        return Err(LineError::Empty);
    }
    let sum = i64::try_from(sum).map_err(|_| LineError::SumOverflow { count })?;
    Ok(LineSum { sum, count })
}

/// `[+-]?[0-9]+` as an i64; `Err(true)` when it is a number out of range, `Err(false)` when not one.
fn parse_number(token: &[u8]) -> Result<i64, bool> {
    let digits = match token.first() {
        Some(b'+' | b'-') => &token[1..],
        _ => token,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(false);
    }
    // Only ASCII digits and one sign are left, so the text is UTF-8 and i64's parser agrees with
    // ours about the syntax; its only remaining failure is range.
    std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(true)
}
// ANCHOR_END: sum_line

/// A token as an error message shows it: lossy UTF-8, at most TOKEN_SHOWN characters.
fn shown(token: &[u8]) -> String {
    let text = String::from_utf8_lossy(token);
    if text.chars().count() > TOKEN_SHOWN {
        text.chars().take(TOKEN_SHOWN).chain(['…']).collect()
    } else {
        text.into_owned()
    }
}

/// Reads one line into `buf` without its line ending (`\n` or `\r\n`), keeping at most `keep`
/// bytes of it; the rest of an overlong line is read and dropped, never stored. Returns the line's
/// full length without its line ending, or `None` at the end of the input. `buf` is cleared first.
pub fn read_line_bounded(
    input: &mut impl BufRead,
    keep: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut len = 0; // bytes of the line seen so far, without the `\n`
    let mut last = None; // the last of them, to drop a `\r` before the `\n`
    let mut any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (text, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let room = keep.saturating_sub(buf.len()).min(text.len());
        buf.extend_from_slice(&text[..room]);
        len += text.len();
        last = text.last().copied().or(last);
        let used = text.len() + usize::from(newline);
        input.consume(used);
        if newline {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if last == Some(b'\r') {
        if buf.len() == len {
            buf.pop();
        }
        len -= 1;
    }
    Ok(Some(len))
}

// ANCHOR: slot
/// The bytes of line text one [`LineSlot`] holds: the rest of its 4096 bytes.
pub const SLOT_CAPACITY: usize = 4096 - 24;

/// One line in shared memory: 4096 bytes holding a protocol word, the line's number and length,
/// when it was published, and its text. Lives at offset 0 of a shared mapping (mmap rounds it up
/// to whole pages, whatever the page size); zeroed memory is an empty slot.
#[repr(C)]
pub struct LineSlot {
    /// The protocol's word (POSIX shared memory: seed 001's 0 = empty, 1 = line ready, 2 = no more lines).
    pub state: AtomicU32,
    /// The line's full length in bytes (without its newline); more than SLOT_CAPACITY when the
    /// line did not fit and only its first SLOT_CAPACITY bytes are in `text`.
    len: AtomicU32,
    /// The line's number in the input, from 1.
    line_no: AtomicU64,
    /// When the writer published the line ([`crate::clock::monotonic_ns`]): the reader times the
    /// hand-off with its own clock reading the moment it sees the line, where the hand-off happens.
    pub published_ns: AtomicU64,
    text: [AtomicU8; SLOT_CAPACITY],
}
// ANCHOR_END: slot

const _: () = assert!(std::mem::size_of::<LineSlot>() == 4096);

/// seed 001's protocol values for [`LineSlot::state`].
pub const EMPTY: u32 = 0;
pub const READY: u32 = 1;
pub const DONE: u32 = 2;

impl LineSlot {
    /// The slot at the start of a shared mapping of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be the start of a readable and writable mapping of at least `len` bytes that
    /// stays mapped for `'a`, and that memory must only ever be accessed through atomics (any
    /// process mapping it must use a `LineSlot` too).
    pub unsafe fn at<'a>(ptr: *mut u8, len: usize) -> anyhow::Result<&'a LineSlot> {
        anyhow::ensure!(
            len >= std::mem::size_of::<LineSlot>(),
            "a line slot needs {} bytes, the mapping has {len}",
            std::mem::size_of::<LineSlot>()
        );
        anyhow::ensure!(
            ptr as usize % std::mem::align_of::<LineSlot>() == 0,
            "a line slot must be {}-byte aligned",
            std::mem::align_of::<LineSlot>()
        );
        // SAFETY: size and alignment checked above; every bit pattern is a valid LineSlot (it is
        // all atomics); the caller guarantees the mapping outlives 'a and is only used atomically.
        Ok(unsafe { &*(ptr as *const LineSlot) })
    }

    /// Copies a line (without its line ending) and its number into the slot; `full_len` is the
    /// line's full length, which may be more than `line` holds (see [`read_line_bounded`]); only
    /// the first SLOT_CAPACITY bytes are stored.
    /// Does not touch `state`: the caller publishes the line with a `Release` store to it.
    pub fn put(&self, line_no: u64, line: &[u8], full_len: usize) {
        for (cell, &byte) in self.text.iter().zip(line.iter().take(SLOT_CAPACITY)) {
            cell.store(byte, Ordering::Relaxed);
        }
        self.len.store(
            u32::try_from(full_len).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        self.line_no.store(line_no, Ordering::Relaxed);
    }

    /// Copies the line out of the slot into `buf`; returns (line number, full length). Call it
    /// after an `Acquire` load of `state` saw the line published.
    pub fn take(&self, buf: &mut Vec<u8>) -> (u64, usize) {
        let full_len = self.len.load(Ordering::Relaxed) as usize;
        buf.clear();
        buf.extend(
            self.text[..full_len.min(SLOT_CAPACITY)]
                .iter()
                .map(|cell| cell.load(Ordering::Relaxed)),
        );
        (self.line_no.load(Ordering::Relaxed), full_len)
    }
}

/// The child's side of one line: the sum, or what was wrong, given what [`LineSlot::take`] gave.
/// A line longer than `max_len` (or than the slot) is `TooLong` with its full length.
pub fn sum_slot_line(text: &[u8], full_len: usize, max_len: usize) -> Result<LineSum, LineError> {
    let max = max_len.min(SLOT_CAPACITY);
    if full_len > max {
        return Err(LineError::TooLong { len: full_len, max });
    }
    sum_line(text, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(s: &str) -> Result<LineSum, LineError> {
        sum_line(s.as_bytes(), 100)
    }

    #[test]
    fn sums_numbers_with_any_spacing_and_signs() {
        assert_eq!(sum("1 2 3"), Ok(LineSum { sum: 6, count: 3 }));
        assert_eq!(sum("  -5\t+7  007 \r\n"), Ok(LineSum { sum: 9, count: 3 }));
        assert_eq!(sum("-0"), Ok(LineSum { sum: 0, count: 1 }));
    }

    #[test]
    fn names_the_first_bad_token() {
        assert_eq!(
            sum("1 2x 3 y"),
            Err(LineError::NotANumber {
                token: 2,
                text: "2x".into()
            })
        );
        for bad in ["-", "+", "1e3", "0x10", "1_000", "--1", "+-1", "٣", "1.5"] {
            assert!(
                matches!(sum(bad), Err(LineError::NotANumber { token: 1, .. })),
                "{bad}"
            );
        }
        assert_eq!(
            sum("1 abc").unwrap_err().to_string(),
            r#"not a number: "abc" (token 2)"#
        );
    }

    #[test]
    fn long_tokens_are_cut_in_messages() {
        let long = "x".repeat(50);
        let Err(LineError::NotANumber { text, .. }) = sum(&long) else {
            panic!()
        };
        assert_eq!(text.chars().count(), TOKEN_SHOWN + 1);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn out_of_range_numbers_and_sums() {
        assert_eq!(sum(&i64::MAX.to_string()).unwrap().sum, i64::MAX);
        assert_eq!(sum(&i64::MIN.to_string()).unwrap().sum, i64::MIN);
        assert_eq!(
            sum("1 9223372036854775808"),
            Err(LineError::NumberOutOfRange {
                token: 2,
                text: "9223372036854775808".into()
            })
        );
        assert!(matches!(
            sum("-9223372036854775809"),
            Err(LineError::NumberOutOfRange { .. })
        ));
        assert_eq!(
            sum("9223372036854775807 1"),
            Err(LineError::SumOverflow { count: 2 })
        );
        // Only the true sum matters, not the order.
        assert_eq!(sum("9223372036854775807 1 -1").unwrap().sum, i64::MAX);
        // A bad token comes before an overflowing sum.
        assert!(matches!(
            sum("9223372036854775807 1 z"),
            Err(LineError::NotANumber { token: 3, .. })
        ));
    }

    #[test]
    fn length_is_checked_first_without_the_newline() {
        assert_eq!(sum_line(b"12345\r\n", 5).unwrap().sum, 12345);
        assert_eq!(
            sum_line(b"1 2 x\n", 4),
            Err(LineError::TooLong { len: 5, max: 4 })
        );
    }

    #[test]
    fn empty_lines() {
        assert_eq!(sum(""), Err(LineError::Empty));
        assert_eq!(sum(" \t\r\n"), Err(LineError::Empty));
        assert_eq!(sum("\n"), Err(LineError::Empty));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_bad_token() {
        assert!(matches!(
            sum_line(b"1 \xff2", 10),
            Err(LineError::NotANumber { token: 2, .. })
        ));
    }

    #[test]
    fn bounded_reading_measures_overlong_lines() {
        let mut input = b"1 2\r\n".to_vec();
        input.extend([b'7'; 10_000]);
        input.extend(b"\r\n\n12345678\r\nlast");
        let mut reader = std::io::BufReader::with_capacity(64, &input[..]);
        let mut buf = Vec::new();
        let mut next = |buf: &mut Vec<u8>| read_line_bounded(&mut reader, 8, buf).unwrap();
        assert_eq!(next(&mut buf), Some(3));
        assert_eq!(buf, b"1 2");
        assert_eq!(next(&mut buf), Some(10_000));
        assert_eq!(buf, b"77777777");
        assert_eq!(next(&mut buf), Some(0));
        assert_eq!(buf, b"");
        assert_eq!(next(&mut buf), Some(8));
        assert_eq!(buf, b"12345678");
        assert_eq!(next(&mut buf), Some(4));
        assert_eq!(buf, b"last");
        assert_eq!(next(&mut buf), None);
    }

    #[test]
    fn a_slot_carries_a_line_and_its_length() {
        let mut page = vec![0u64; 512]; // 4096 bytes, 8-aligned, zeroed: an empty slot
        let ptr = page.as_mut_ptr() as *mut u8;
        // SAFETY: the Vec lives to the end of the test and is only used through the slot.
        let slot = unsafe { LineSlot::at(ptr, 4096) }.unwrap();
        assert_eq!(slot.state.load(Ordering::Relaxed), EMPTY);
        let mut buf = Vec::new();
        slot.put(3, b"4 5", 3);
        assert_eq!(slot.take(&mut buf), (3, 3));
        assert_eq!(sum_slot_line(&buf, 3, 100).unwrap().sum, 9);
        let long = vec![b'1'; SLOT_CAPACITY + 10];
        slot.put(4, &long, long.len());
        assert_eq!(slot.take(&mut buf), (4, SLOT_CAPACITY + 10));
        assert_eq!(buf.len(), SLOT_CAPACITY);
        assert_eq!(
            sum_slot_line(&buf, SLOT_CAPACITY + 10, usize::MAX),
            Err(LineError::TooLong {
                len: SLOT_CAPACITY + 10,
                max: SLOT_CAPACITY
            })
        );
        assert!(unsafe { LineSlot::at(ptr, 100) }.is_err());
    }
}
