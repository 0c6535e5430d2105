//! Message content formats. Plain text is stored as given (clients escape it when rendering);
//! HTML is cleaned with an allowlist before it is stored, so every reader gets the same safe text.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

/// The link schemes a message may carry.
const SCHEMES: [&str; 3] = ["http", "https", "mailto"];

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let tags: HashSet<&str> = [
        "p",
        "br",
        "strong",
        "em",
        "u",
        "s",
        "a",
        "ul",
        "ol",
        "li",
        "blockquote",
        "code",
        "pre",
        "span",
    ]
    .into_iter()
    .collect();
    let mut b = ammonia::Builder::empty();
    b.tags(tags)
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .url_schemes(SCHEMES.into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_relative(ammonia::UrlRelative::Deny)
        .strip_comments(true);
    b
});

/// Cleans submitted HTML to the allowlist: the tags above, only `a[href]` with http, https or
/// mailto, and `rel="noopener noreferrer nofollow"` on links.
#[must_use]
pub fn clean_html(input: &str) -> String {
    CLEANER.clean(input).to_string()
}

/// The link targets (`a[href]`) of cleaned HTML, as a reader's browser gets them (entities
/// decoded), in order. Read with the same parser the cleaner uses, never by hand.
#[must_use]
pub fn html_links(cleaned: &str) -> Vec<String> {
    let found = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&found);
    let mut b = ammonia::Builder::empty();
    b.tags(HashSet::from(["a"]))
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .url_schemes(SCHEMES.into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .attribute_filter(move |element, attribute, value| {
            if element == "a" && attribute == "href" {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(value.to_owned());
            }
            Some(value.into())
        });
    let _ = b.clean(cleaned);
    let mut links = found
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::mem::take(&mut *links)
}

/// Whether cleaned HTML has any visible text left.
#[must_use]
pub fn html_is_blank(cleaned: &str) -> bool {
    html_text(cleaned).trim().is_empty()
}

/// Elements a reader sees as their own line: their tags part the words around them.
const BLOCKS: [&str; 18] = [
    "p",
    "br",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "tr",
    "td",
    "th",
];

/// The visible text of cleaned HTML: tags dropped — a block's or a line break's leaving a
/// newline, as the reader sees the words parted (so `<p>ok</p><p>darn</p>` reads `ok` and `darn`
/// to a content guard, not `okdarn`), an inline one's nothing (`da<b>rn</b>` is `darn`) — and
/// the entities the cleaner writes (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`, `&nbsp;`) turned
/// back into characters. For content guards and search snippets, which escape it again.
#[must_use]
pub fn html_text(cleaned: &str) -> String {
    let mut in_tag = false;
    let mut tag = String::new();
    // A block's edge parts the text before it from the text after it: one newline, and none
    // at the very start or end.
    let mut parted = false;
    let mut text = String::with_capacity(cleaned.len());
    for c in cleaned.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                parted |= BLOCKS.contains(&name.as_str());
            }
            _ if !in_tag => {
                if std::mem::take(&mut parted) && !text.is_empty() {
                    text.push('\n');
                }
                text.push(c);
            }
            _ => tag.push(c),
        }
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_part_the_words_they_hold_and_inline_tags_do_not() {
        assert_eq!(html_text(&clean_html("<p>ok</p><p>darn</p>")), "ok\ndarn");
        assert_eq!(html_text(&clean_html("a<br>darn")), "a\ndarn");
        assert_eq!(
            html_text(&clean_html("<ul><li>x</li><li>darn</li></ul>")),
            "x\ndarn"
        );
        assert_eq!(html_text(&clean_html("da<strong>rn</strong>")), "darn");
        assert_eq!(html_text("<p>1 &lt; 2 &amp;&amp; x</p>"), "1 < 2 && x");
    }

    #[test]
    fn links_are_read_with_their_entities_decoded() {
        let cleaned = clean_html(
            r#"<p>see <a href="https://a.example/x?q=1&amp;r=2">docs</a> and <a href='mailto:m@b.example'>mail</a> <a href="javascript:x()">no</a></p>"#,
        );
        assert_eq!(
            html_links(&cleaned),
            ["https://a.example/x?q=1&r=2", "mailto:m@b.example"]
        );
        assert!(html_links(&clean_html("<p>no links</p>")).is_empty());
    }

    #[test]
    fn scripts_handlers_and_bad_schemes_go() {
        let out = clean_html(
            r#"<p onclick="x()">hi<script>alert(1)</script><a href="javascript:alert(1)">x</a><img src=x onerror=y></p>"#,
        );
        assert!(!out.contains("script"));
        assert!(!out.contains("onclick"));
        assert!(!out.contains("javascript"));
        assert!(!out.contains("<img"));
        assert!(out.starts_with("<p>hi"));
    }

    #[test]
    fn links_keep_only_href_and_get_rel() {
        let out = clean_html(r#"<a href="https://example.com" title="t" style="color:red">x</a>"#);
        assert_eq!(
            out,
            r#"<a href="https://example.com" rel="noopener noreferrer nofollow">x</a>"#
        );
        let mail = clean_html(r#"<a href="mailto:a@b.c">m</a>"#);
        assert!(mail.contains("mailto:a@b.c"));
    }

    #[test]
    fn span_attributes_are_removed() {
        assert_eq!(
            clean_html(r#"<span class="c" style="x">t</span>"#),
            "<span>t</span>"
        );
    }

    #[test]
    fn blank_after_cleaning() {
        assert!(html_is_blank(&clean_html("<script>x</script>")));
        assert!(html_is_blank(&clean_html("<p> </p><br>")));
        assert!(!html_is_blank(&clean_html("<p>a</p>")));
    }
}
