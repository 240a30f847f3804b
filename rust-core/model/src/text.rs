//! Text from outside the plugin (job and vertex names, exception messages) as it goes into
//! an `AUTOTUNE` line: one record stays one line, and a quoted name ends where its quote does,
//! whatever the name holds.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters of a name kept in a line; the rest is counted.
pub const MAX_NAME_CHARS: usize = 300;

/// The text with line breaks and other control characters escaped (`\n`, `\r`, `\t`,
/// `\u{1b}`): what a log line may hold.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// A name in double quotes, as lines show names: quotes and backslashes escaped, control
/// characters escaped, and cut after [`MAX_NAME_CHARS`] characters with the rest counted.
pub fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_NAME_CHARS) + 2);
    out.push('"');
    for c in name.chars().take(MAX_NAME_CHARS) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => push_escaped(&mut out, c),
        }
    }
    let left = name.chars().count().saturating_sub(MAX_NAME_CHARS);
    if left > 0 {
        let _ = write!(out, "…(+{left} chars)");
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_as_it_is() {
        assert!(matches!(one_line("Work -> Sink: Writer"), Cow::Borrowed(_)));
        assert_eq!(quoted("Work -> Sink: Writer"), "\"Work -> Sink: Writer\"");
        assert_eq!(quoted("Überweisungen 東京"), "\"Überweisungen 東京\"");
    }

    #[test]
    fn hostile_names_stay_one_quoted_field() {
        let hostile = "../../etc\"; rm -rf /\n\rAUTOTUNE AT101 SCALE_UP fake\u{1b}[31m\\";
        let q = quoted(hostile);
        assert!(
            !q.contains('\n') && !q.contains('\r') && !q.contains('\u{1b}'),
            "{q}"
        );
        // The only unescaped quotes are the two around it.
        let inner = &q[1..q.len() - 1];
        assert!(
            !inner.replace("\\\\", "").replace("\\\"", "").contains('"'),
            "{q}"
        );
        assert_eq!(
            q,
            "\"../../etc\\\"; rm -rf /\\n\\rAUTOTUNE AT101 SCALE_UP fake\\u{1b}[31m\\\\\""
        );
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
    }

    #[test]
    fn long_names_are_cut_and_counted() {
        let q = quoted(&"x".repeat(10_000));
        assert!(q.ends_with("…(+9700 chars)\""), "{}", &q[q.len() - 30..]);
        assert!(q.chars().count() < MAX_NAME_CHARS + 30);
    }
}
