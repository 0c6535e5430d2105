//! Server-Sent Events framing (the WHATWG `text/event-stream` rules), for a model's streamed
//! answer: bytes in, as they arrive, split anywhere (even inside a UTF-8 character or between
//! CR and LF); the `data` of each complete event out. Lines end with CRLF, LF or CR; a line
//! starting with `:` is a comment; `field: value` drops one space after the colon; `data`
//! lines of one event are joined with `\n`; a blank line ends the event; an event with no
//! `data` is not one. Other fields (`event`, `id`, `retry`) are read and ignored: Chat
//! Completions does not use them. An unfinished event at the end of the stream is dropped.

/// Reads events out of a byte stream fed in pieces.
#[derive(Debug, Default)]
pub struct EventReader {
    /// Bytes of the current line not ended yet.
    line: Vec<u8>,
    /// The last line ended with CR: a LF right after it belongs to that line end.
    after_cr: bool,
    /// The `data` of the event being read, and whether it has any.
    data: String,
    has_data: bool,
}

impl EventReader {
    /// Feeds `bytes`; answers the `data` of every event they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                b'\n' => self.end_line(&mut events),
                _ => self.line.push(b),
            }
        }
        events
    }

    /// Bytes held for an event not finished yet (a stream that ends here was cut short).
    #[must_use]
    pub fn is_mid_event(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(&String::from_utf8_lossy(value));
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(bytes: &[u8]) -> Vec<String> {
        EventReader::default().feed(bytes)
    }

    #[test]
    fn events_lines_comments_and_line_ends() {
        assert_eq!(all(b"data: a\n\ndata: b\n\n"), ["a", "b"]);
        assert_eq!(
            all(b"data: a\r\n\r\ndata: b\r\rdata:c\n\n"),
            ["a", "b", "c"]
        );
        // One space dropped, not more; no space is fine; a line with no colon is a field name.
        assert_eq!(all(b"data:  two\n\n"), [" two"]);
        assert_eq!(all(b"data\n\n"), [""]);
        // Multi-line data joins with \n; comments and other fields are skipped.
        assert_eq!(
            all(b": keep-alive\nevent: x\nid: 7\nretry: 10\ndata: a\ndata: b\n\n"),
            ["a\nb"]
        );
        // No data, no event; an unfinished event is held.
        assert!(all(b"event: ping\n\n: comment\n\n").is_empty());
        let mut r = EventReader::default();
        assert!(r.feed(b"data: cut").is_empty());
        assert!(r.is_mid_event());
        assert_eq!(r.feed(b" here\n\n"), ["cut here"]);
        assert!(!r.is_mid_event());
        // CR then LF across two pieces is one line end, not two (not an early blank line).
        let mut r = EventReader::default();
        assert!(r.feed(b"data: a\r").is_empty());
        assert!(r.feed(b"\ndata: b\r").is_empty());
        assert_eq!(r.feed(b"\n\r\n"), ["a\nb"]);
    }

    #[test]
    fn utf8_split_inside_a_character_is_joined() {
        let text = "data: héllo 👋\n\n".as_bytes();
        let mut r = EventReader::default();
        let mut got = Vec::new();
        for b in text {
            got.extend(r.feed(std::slice::from_ref(b)));
        }
        assert_eq!(got, ["héllo 👋"]);
    }

    /// A stream of events in every line-end style, with comments and multi-line data.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let line_end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let data = "[a-zé👋{}\":, ]{0,12}";
        let event = (
            proptest::collection::vec(data, 1..4),
            line_end,
            any::<bool>(),
        )
            .prop_map(|(lines, end, comment)| {
                let mut s = String::new();
                if comment {
                    s.push_str(": c");
                    s.push_str(end);
                }
                for l in lines {
                    s.push_str("data: ");
                    s.push_str(&l);
                    s.push_str(end);
                }
                s.push_str(end);
                s
            });
        proptest::collection::vec(event, 0..6).prop_map(|e| e.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn splitting_anywhere_gives_the_same_events(
            bytes in stream(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let whole = all(&bytes);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut r = EventReader::default();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in at {
                pieces.extend(r.feed(&bytes[from..cut]));
                from = cut;
            }
            pieces.extend(r.feed(&bytes[from..]));
            prop_assert_eq!(pieces, whole);
        }
    }
}
