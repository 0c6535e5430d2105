//! What an upload is, from its first bytes (DATA-1): the type from magic bytes (`infer`)
//! against the allowlist — the client's Content-Type and file name are never asked — plain
//! text only when it is UTF-8 without control characters or markup, and for raster images
//! the pixel count from the header (`imagesize`, nothing is decoded) against the cap. Markup
//! or an archive inside an image or PDF (a polyglot, which some browser or tool would run as
//! the other type) is refused.

/// How many leading bytes are examined (JPEG headers can sit behind long metadata).
pub const HEAD_BYTES: usize = 256 * 1024;

/// Types served inline (raster images a browser only draws); everything else is an attachment.
pub const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Why the content is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a type the allowlist has (or one never accepted).
    TypeNotAllowed(Option<String>),
    /// An image whose header says more pixels than the cap (a decompression bomb).
    TooManyPixels { width: usize, height: usize },
    /// An image whose header cannot be read.
    Corrupt(String),
    /// Another format hidden inside this one.
    Polyglot(String),
}

/// What lets a browser or a tool treat the bytes as something else: markup that runs script,
/// and a ZIP local header (a GIFAR-style archive inside an image).
const POLYGLOT_MARKERS: &[&[u8]] = &[
    b"<script",
    b"<html",
    b"<svg",
    b"<!doctype html",
    b"<iframe",
    b"<body",
    b"<object",
    b"<embed",
    b"javascript:",
];

/// Markup a plain-text upload may not carry (it would be HTML, SVG or XML in disguise).
const MARKUP_STARTS: &[&[u8]] = &[b"<?xml", b"<!doctype", b"<html", b"<svg", b"<script"];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_raster(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/bmp" | "image/tiff"
    )
}

/// Plain UTF-8 text: valid (a character cut at the end of a partial head is fine), no NUL or
/// other control characters but tab, newlines and form feed.
fn is_plain_text(head: &[u8], complete: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !complete && e.error_len().is_none(),
    };
    valid
        && head
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        && !head.contains(&0x7f)
}

/// Decides what `head` (the first bytes, all of them when `complete`) is; the MIME type when it
/// is allowed.
pub fn detect(
    head: &[u8],
    complete: bool,
    allowed: &[String],
    max_pixels: u64,
) -> Result<String, Refusal> {
    let allows = |m: &str| allowed.iter().any(|a| a == m);
    let lower = head.to_ascii_lowercase();
    let mime = match infer::get(head) {
        Some(t) => t.mime_type().to_owned(),
        None if is_plain_text(head, complete) => {
            let trimmed = lower.trim_ascii_start();
            if MARKUP_STARTS.iter().any(|m| trimmed.starts_with(m))
                || POLYGLOT_MARKERS.iter().any(|m| contains(&lower, m))
            {
                return Err(Refusal::TypeNotAllowed(Some("text/html".into())));
            }
            "text/plain".to_owned()
        }
        None => return Err(Refusal::TypeNotAllowed(None)),
    };
    if !allows(&mime) {
        return Err(Refusal::TypeNotAllowed(Some(mime)));
    }
    if is_raster(&mime) || mime == "application/pdf" {
        if let Some(m) = POLYGLOT_MARKERS.iter().find(|m| contains(&lower, m)) {
            return Err(Refusal::Polyglot(String::from_utf8_lossy(m).into_owned()));
        }
    }
    if is_raster(&mime) {
        if contains(head.get(4..).unwrap_or_default(), b"PK\x03\x04") {
            return Err(Refusal::Polyglot("a ZIP archive".into()));
        }
        let size = imagesize::blob_size(head)
            .map_err(|_| Refusal::Corrupt("the image header cannot be read".into()))?;
        if size.width == 0 || size.height == 0 {
            return Err(Refusal::Corrupt("the image has no pixels".into()));
        }
        let pixels = (size.width as u64).saturating_mul(size.height as u64);
        if pixels > max_pixels {
            return Err(Refusal::TooManyPixels {
                width: size.width,
                height: size.height,
            });
        }
    }
    Ok(mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ["image/png", "image/gif", "application/pdf", "text/plain"]
            .map(String::from)
            .to_vec()
    }

    /// A PNG signature and IHDR chunk of `w` × `h` (CRC not checked by header readers).
    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0u8; 64]);
        v
    }

    #[test]
    fn content_decides() {
        let a = allowed();
        assert_eq!(detect(&png(10, 10), true, &a, 1000).unwrap(), "image/png");
        assert_eq!(detect(b"hello\n", true, &a, 1000).unwrap(), "text/plain");
        assert_eq!(
            detect(&png(100_000, 100_000), true, &a, 50_000_000),
            Err(Refusal::TooManyPixels {
                width: 100_000,
                height: 100_000
            })
        );
        // An ELF binary is recognised and not allowed; random bytes are not text.
        assert!(matches!(
            detect(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", true, &a, 1000),
            Err(Refusal::TypeNotAllowed(_))
        ));
        assert!(matches!(
            detect(&[0xff, 0x00, 0x13, 0x99], true, &a, 1000),
            Err(Refusal::TypeNotAllowed(None))
        ));
        for markup in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
            b"<!DOCTYPE html><p>x",
            b"  <?xml version='1.0'?><a/>",
        ] {
            assert!(matches!(
                detect(markup, true, &a, 1000),
                Err(Refusal::TypeNotAllowed(_))
            ));
        }
        let mut polyglot = png(10, 10);
        polyglot.extend_from_slice(b"<SCRIPT>alert(1)</SCRIPT>");
        assert!(matches!(
            detect(&polyglot, true, &a, 1000),
            Err(Refusal::Polyglot(_))
        ));
        let mut gifar = png(10, 10);
        gifar.extend_from_slice(b"PK\x03\x04rest-of-a-jar");
        assert!(matches!(
            detect(&gifar, true, &a, 1000),
            Err(Refusal::Polyglot(_))
        ));
        // A PNG signature with a cut header.
        assert!(matches!(
            detect(b"\x89PNG\r\n\x1a\n\x00\x00", true, &a, 1000),
            Err(Refusal::Corrupt(_))
        ));
        // A PNG when only text is allowed.
        assert!(matches!(
            detect(&png(1, 1), true, &["text/plain".to_owned()], 1000),
            Err(Refusal::TypeNotAllowed(Some(m))) if m == "image/png"
        ));
    }

    #[test]
    fn text_cut_mid_character_is_text_until_complete() {
        let a = allowed();
        let cut = "é".as_bytes()[..1].to_vec();
        let mut head = b"caf".to_vec();
        head.extend_from_slice(&cut);
        assert!(detect(&head, false, &a, 1000).is_ok());
        assert!(detect(&head, true, &a, 1000).is_err());
    }
}
