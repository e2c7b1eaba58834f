//! Text from outside, made safe to print on an operator's terminal.
//!
//! Job ids, field names, vendor messages and dead-letter headers all come from producers or
//! vendors. Printed raw, an escape sequence among them could retitle the terminal, clear it,
//! or hide a line, and a bidirectional override could show one text while meaning another.
//! Every command that prints such text passes it through here: control characters and
//! bidirectional overrides are shown escaped, everything else as it is.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

/// Whether `c` must not reach a terminal as it is.
fn unsafe_for_terminal(c: char) -> bool {
    crate::contract::unsafe_char(c.encode_utf8(&mut [0; 4])).is_some()
}

/// `text` for a table or a line of plain output: every control character (newlines too, so
/// one value cannot fake another line) and bidirectional override as `\u{…}`.
pub fn printable(text: &str) -> Cow<'_, str> {
    escaped(text, unsafe_for_terminal, |out, c| write!(out, "\\u{{{:x}}}", c as u32))
}

/// `text` with every character `needs` picks written by `escape`; borrowed when there is none.
fn escaped(
    text: &str,
    needs: impl Fn(char) -> bool,
    escape: impl Fn(&mut String, char) -> std::fmt::Result,
) -> Cow<'_, str> {
    if !text.chars().any(&needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            let _ = escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as JSON that is safe on a terminal and still the same JSON: serde_json escapes
/// C0 controls itself; DEL, C1 controls and bidirectional overrides are escaped here as
/// `\uXXXX`, which JSON readers decode to the same characters.
pub fn json(value: &impl Serialize, pretty: bool) -> String {
    let raw = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) };
    let raw = raw.expect("values printed by the CLI serialise");
    // A raw C0 control in serde_json's output is its own layout (pretty printing's
    // newlines): inside strings it has escaped them all already. Outside strings JSON has
    // only ASCII structure, so every character escaped here is inside one.
    let escape = |c: char| c >= '\u{7f}' && unsafe_for_terminal(c);
    escaped(&raw, escape, |out, c| write!(out, "\\u{:04x}", c as u32)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_the_terminal_as_text() {
        let hostile = "\u{1b}]0;PWNED\u{7}\u{1b}[2J";
        assert_eq!(printable(hostile), "\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J");
        assert_eq!(printable("a\nb\r\u{202e}c\u{9b}"), "a\\u{a}b\\u{d}\\u{202e}c\\u{9b}");
        assert!(matches!(printable("Zoë O'Neil"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_the_same_json() {
        let value = serde_json::json!({"k\u{202e}": "\u{1b}[2J\u{9b}1m\u{7f}"});
        let shown = json(&value, false);
        assert!(!shown.chars().any(unsafe_for_terminal), "{shown}");
        assert!(!json(&value, true).chars().any(|c| c != '\n' && unsafe_for_terminal(c)));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).unwrap(), value);
        assert_eq!(json(&value, true).lines().count(), 3);
    }
}
