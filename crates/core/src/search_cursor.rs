//! Search cursors, sealed (MSG-6, AZ-1). A page of hits ends at a position: the last hit's
//! score and id. The score of SQLite's FTS5 (`bm25`) is computed from the whole index — how
//! many messages there are, how long they are on average, how many hold the word, every org's
//! included — so a cursor that carried it readably would tell a caller how often any word is
//! written on the whole server; one a caller could forge would let them probe those scores.
//! So the position travels sealed with AES-256-GCM under a key derived from the master key
//! (`ServerKeys::search_cursor`): a fresh random nonce per cursor, and associated data naming
//! the search it continues — the caller, where they search, the order and the query text — so
//! a cursor opens only for the next page of that same search. Anything else (garbled, forged,
//! another search's) does not open, and the edge answers it as it answers any invalid cursor.
//!
//! Cursors are transient: nothing stores them, so the key has no ring and no rotation; a
//! cursor made before the master key changed simply no longer opens.

use crate::ids::{ConversationId, MessageId, OrgId, UserId};
use crate::keys::ServerKeys;
use crate::search::SearchText;
use crate::store::SearchFrom;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::ExposeSecret;

/// Length of a cursor's nonce in bytes (96 bits, AES-GCM's).
const NONCE_LEN: usize = 12;
/// The sealed position: a score's bits (8 bytes) then a message id (16).
const PLAIN_LEN: usize = 24;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// A cursor's bytes: nonce, sealed position and tag.
const SEALED_LEN: usize = NONCE_LEN + PLAIN_LEN + TAG_LEN;
/// A cursor's length in characters: [`SEALED_LEN`] bytes in unpadded base64url.
pub const CURSOR_CHARS: usize = (SEALED_LEN * 8).div_ceil(6);

/// Where a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// Every conversation of the org the caller may read.
    Org(OrgId),
    /// One conversation.
    Conversation(ConversationId),
}

/// Seals and opens the cursors of one caller's searches in one scope.
pub struct CursorSeal {
    cipher: Aes256Gcm,
    user: UserId,
    scope: SearchScope,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl CursorSeal {
    /// The seal of `user`'s searches in `scope`, under the server's cursor key.
    #[must_use]
    pub fn new(keys: &ServerKeys, user: UserId, scope: SearchScope) -> Self {
        let key = Key::<Aes256Gcm>::from_slice(keys.search_cursor.expose_secret());
        Self {
            cipher: Aes256Gcm::new(key),
            user,
            scope,
        }
    }

    /// What a cursor is bound to: the format, the caller, the scope, the order and the text.
    fn associated_data(&self, text: &SearchText, from: SearchFrom) -> Vec<u8> {
        let (kind, scope) = match self.scope {
            SearchScope::Org(id) => (b'o', id.0),
            SearchScope::Conversation(id) => (b'c', id.0),
        };
        let order = match from {
            SearchFrom::Relevance(_) => b'r',
            SearchFrom::Newest(_) => b'n',
        };
        let mut aad = Vec::with_capacity(64 + text.as_str().len());
        aad.extend_from_slice(b"conclave-search-cursor-v1\0");
        aad.extend_from_slice(self.user.0.as_bytes());
        aad.push(kind);
        aad.extend_from_slice(scope.as_bytes());
        aad.push(order);
        aad.extend_from_slice(text.as_str().as_bytes());
        aad
    }

    /// The cursor after the hit with `score` and `id` in the search of `text` in the order of
    /// `from` (the newest order keeps no score): [`CURSOR_CHARS`] characters of base64url.
    #[must_use]
    pub fn seal(&self, text: &SearchText, from: SearchFrom, score: f64, id: MessageId) -> String {
        let score = match from {
            SearchFrom::Relevance(_) => score,
            SearchFrom::Newest(_) => 0.0,
        };
        let mut plain = [0u8; PLAIN_LEN];
        plain[..8].copy_from_slice(&score.to_bits().to_be_bytes());
        plain[8..].copy_from_slice(id.0.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = self.associated_data(text, from);
        // AES-GCM encryption cannot fail for inputs below its 64 GiB limit.
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("sealing 24 bytes"));
        let mut raw = Vec::with_capacity(SEALED_LEN);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        b64().encode(raw)
    }

    /// The position a cursor of [`Self::seal`] names, in the order `from` asks for; `None`
    /// unless it was sealed by this server for this same search (caller, scope, order, text).
    #[must_use]
    pub fn open(&self, text: &SearchText, from: SearchFrom, raw: &str) -> Option<SearchFrom> {
        if raw.len() != CURSOR_CHARS {
            return None;
        }
        let bytes = b64().decode(raw).ok()?;
        if bytes.len() != SEALED_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = self.associated_data(text, from);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        let (bits, id) = plain.split_at(8);
        let id = MessageId(uuid::Uuid::from_slice(id).ok()?);
        Some(match from {
            SearchFrom::Relevance(_) => {
                let score = f64::from_bits(u64::from_be_bytes(bits.try_into().ok()?));
                SearchFrom::Relevance(Some((score, id)))
            }
            SearchFrom::Newest(_) => SearchFrom::Newest(Some(id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn keys(byte: u8) -> ServerKeys {
        ServerKeys::derive(&MasterKey::from_bytes([byte; 32]))
    }

    fn text(q: &str) -> SearchText {
        SearchText::parse(q).unwrap()
    }

    const REL: SearchFrom = SearchFrom::Relevance(None);
    const NEW: SearchFrom = SearchFrom::Newest(None);

    #[test]
    fn a_cursor_opens_for_its_own_search_only() {
        let (k, user, org) = (keys(1), UserId::new(), OrgId::new());
        let seal = CursorSeal::new(&k, user, SearchScope::Org(org));
        let (id, score) = (MessageId::new(), -1.25e-6);
        let q = text("apple");
        let rel = seal.seal(&q, REL, score, id);
        assert_eq!(rel.len(), CURSOR_CHARS);
        assert_eq!(
            seal.open(&q, REL, &rel),
            Some(SearchFrom::Relevance(Some((score, id))))
        );
        let new = seal.seal(&q, NEW, score, id);
        assert_eq!(seal.open(&q, NEW, &new), Some(SearchFrom::Newest(Some(id))));
        // Fresh nonces: the same position never gives the same cursor twice.
        assert_ne!(rel, seal.seal(&q, REL, score, id));
        // Another order, text, caller, scope or server: refused.
        assert_eq!(seal.open(&q, NEW, &rel), None);
        assert_eq!(seal.open(&q, REL, &new), None);
        assert_eq!(seal.open(&text("pear"), REL, &rel), None);
        let others = [
            CursorSeal::new(&k, UserId::new(), SearchScope::Org(org)),
            CursorSeal::new(&k, user, SearchScope::Org(OrgId::new())),
            CursorSeal::new(&k, user, SearchScope::Conversation(ConversationId(org.0))),
            CursorSeal::new(&keys(2), user, SearchScope::Org(org)),
        ];
        for other in others {
            assert_eq!(other.open(&q, REL, &rel), None);
        }
    }

    #[test]
    fn the_score_cannot_be_read_nor_a_cursor_forged() {
        let seal = CursorSeal::new(&keys(1), UserId::new(), SearchScope::Org(OrgId::new()));
        let (id, score) = (MessageId::new(), -3.5_f64);
        let q = text("apple");
        let cursor = seal.seal(&q, REL, score, id);
        let raw = b64().decode(&cursor).unwrap();
        let bits = score.to_bits().to_be_bytes();
        assert!(
            !raw.windows(8).any(|w| w == bits),
            "the score is not readable"
        );
        assert!(!raw.windows(16).any(|w| w == id.0.as_bytes()), "nor the id");
        // Every bit flipped is refused, and so is anything else of the right length.
        for i in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(seal.open(&q, REL, &b64().encode(&bad)), None, "bit {i}");
        }
        for bad in [
            "A".repeat(CURSOR_CHARS),
            "_".repeat(CURSOR_CHARS),
            "A".repeat(32),
            String::new(),
            "!".repeat(CURSOR_CHARS),
            format!("{cursor}A"),
        ] {
            assert_eq!(seal.open(&q, REL, &bad), None, "{bad}");
        }
    }
}
