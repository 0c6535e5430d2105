//! Full-text search of messages (MSG-6): the query text as the edge parses it, the words it
//! searches for, and the highlighted snippet of a hit — computed here from the message's own
//! content, escaped, so no HTML ever comes from the index.

use crate::model::Message;
use crate::sanitize;
use crate::types::{MessageFormat, Rejection};
use std::collections::HashSet;

/// The longest query, in characters.
pub const SEARCH_MAX_CHARS: usize = 256;

/// A search query: 1–256 characters of plain words. Nothing in it is an operator: quotes,
/// `*`, `OR`, `NEAR(`, `-` or `:` are searched as the text they are (the store quotes each
/// word for its full-text engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Rejection::new("empty", "must not be empty"));
        }
        if raw.chars().count() > SEARCH_MAX_CHARS {
            return Err(Rejection::new(
                "too_long",
                format!("must be at most {SEARCH_MAX_CHARS} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(Rejection::new(
                "invalid_characters",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whitespace-separated words that hold at least one letter or digit, as typed: what
    /// the store searches for, every one of them (a word of punctuation alone matches nothing
    /// in either engine, so it is left out).
    #[must_use]
    pub fn words(&self) -> Vec<&str> {
        self.0
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .collect()
    }

    /// The lower-cased runs of letters and digits of the query: the tokens a snippet marks.
    fn tokens(&self) -> HashSet<String> {
        tokens(&self.0).map(|(_, t)| t.to_lowercase()).collect()
    }
}

/// The runs of letters and digits of `text` (what both full-text engines split it into, near
/// enough for highlighting), with their byte offsets.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start: Option<usize> = None;
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out.into_iter()
}

/// Text as HTML text: `&`, `<`, `>`, `"` and `'` escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Characters of context a snippet keeps before the first match.
const SNIPPET_BEFORE: usize = 60;
/// Characters a snippet keeps in all (before escaping and marks).
const SNIPPET_CHARS: usize = 200;

/// The snippet of `message` for `query`: about [`SNIPPET_CHARS`] characters of its text around
/// the first word the query names, HTML-escaped, each such word wrapped in `<mark>…</mark>`,
/// and `…` where text was cut. An HTML message is reduced to its visible text first. The only
/// markup in a snippet is `<mark>` and `</mark>`.
#[must_use]
pub fn snippet(message: &Message, query: &SearchText) -> String {
    let Some(content) = message.content.as_deref() else {
        return String::new();
    };
    let text = match message.format {
        MessageFormat::Html => sanitize::html_text(content),
        MessageFormat::Text => content.to_owned(),
    };
    let text = text.trim();
    let wanted = query.tokens();
    let marks: Vec<(usize, usize)> = tokens(text)
        .filter(|(_, t)| wanted.contains(&t.to_lowercase()))
        .map(|(i, t)| (i, i + t.len()))
        .collect();
    // The window, in bytes on character boundaries: from a little before the first match.
    let first = marks.first().map_or(0, |m| m.0);
    let start = text[..first]
        .char_indices()
        .rev()
        .nth(SNIPPET_BEFORE.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    // Start at a word boundary when cutting.
    let start = if start == 0 {
        0
    } else {
        text[start..first]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(start, |(i, c)| start + i + c.len_utf8())
    };
    let end = text[start..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(text.len(), |(i, _)| start + i);
    let mut out = String::with_capacity((end - start) * 2);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(from, to) in marks.iter().filter(|(f, t)| *f >= start && *t <= end) {
        escape_into(&mut out, &text[at..from]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[from..to]);
        out.push_str("</mark>");
        at = to;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, MessageId, UserId};
    use crate::model::UserSummary;
    use crate::types::UserKind;
    use proptest::prelude::*;

    fn message(content: &str, format: MessageFormat) -> Message {
        Message {
            id: MessageId::new(),
            conversation_id: ConversationId::new(),
            seq: 1,
            author: UserSummary {
                id: UserId::new(),
                username: "a".into(),
                display_name: None,
                kind: UserKind::User,
            },
            content: Some(content.to_owned()),
            format,
            created_at: chrono::DateTime::UNIX_EPOCH,
            edited_at: None,
            deleted_at: None,
            reply_to: None,
            attachments: Vec::new(),
            status: crate::types::MessageStatus::Complete,
            status_reason: None,
        }
    }

    fn q(raw: &str) -> SearchText {
        SearchText::parse(raw).unwrap()
    }

    #[test]
    fn queries_are_bounded_plain_text() {
        assert_eq!(SearchText::parse("").unwrap_err().code, "empty");
        assert_eq!(SearchText::parse("   ").unwrap_err().code, "empty");
        assert_eq!(
            SearchText::parse(&"a".repeat(257)).unwrap_err().code,
            "too_long"
        );
        assert!(SearchText::parse(&"é".repeat(256)).is_ok());
        assert_eq!(
            SearchText::parse("a\u{0}b").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            q(r#" "quoted" OR x* -not NEAR( a:b *** "#).words(),
            vec![r#""quoted""#, "OR", "x*", "-not", "NEAR(", "a:b"]
        );
        assert!(q("*** -- \"").words().is_empty());
    }

    #[test]
    fn snippets_escape_and_mark_whole_words_of_the_text() {
        use MessageFormat::{Html, Text};
        for (content, format, query, want) in [
            (
                "<script>alert('hi')</script> & Hello, hello-world!",
                Text,
                "HELLO script",
                "&lt;<mark>script</mark>&gt;alert(&#39;hi&#39;)&lt;/<mark>script</mark>&gt; \
                 &amp; <mark>Hello</mark>, <mark>hello</mark>-world!",
            ),
            ("shell", Text, "hell", "shell"),
            // HTML messages are snipped from their text: markup is neither shown nor matched.
            (
                "<p>see <a href=\"https://x.test/?a&amp;b\">the &lt;docs&gt;</a></p>",
                Html,
                "docs href",
                "see the &lt;<mark>docs</mark>&gt;",
            ),
        ] {
            assert_eq!(
                snippet(&message(content, format), &q(query)),
                want,
                "{content}"
            );
        }
    }

    #[test]
    fn long_messages_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "word ".repeat(100), "tail ".repeat(100));
        let s = snippet(&message(&text, MessageFormat::Text), &q("needle"));
        assert!(s.starts_with("…word"), "{s}");
        assert!(s.ends_with('…'), "{s}");
        assert!(s.contains("<mark>needle</mark>"));
        assert!(s.chars().count() < SNIPPET_CHARS + 30, "{s}");
    }

    proptest! {
        /// Whatever the text and query, the only markup in a snippet is the marks.
        #[test]
        fn snippets_hold_no_markup_but_marks(text in "\\PC{0,300}", query in "\\PC{1,20}") {
            prop_assume!(SearchText::parse(&query).is_ok());
            let s = snippet(&message(&text, MessageFormat::Text), &q(&query));
            let bare = s.replace("<mark>", "").replace("</mark>", "");
            prop_assert!(!bare.contains('<') && !bare.contains('>') && !bare.contains('"'));
        }
    }
}
