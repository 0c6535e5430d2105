//! AI agents' typed configuration values and their pure rules (AGENT-1, AGENT-2): what a model
//! name, a system prompt or a model API key may be, when an agent answers a message (a direct
//! conversation, an `@name` mention, a reply to one of its messages), and the name a message's
//! author is given in the model's context.

use crate::types::Rejection;

/// Agents per org.
pub const MAX_AGENTS_PER_ORG: usize = 50;
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;

/// The bounds the HTTP edge and the service hold every numeric setting to.
pub const TEMPERATURE_MAX: f64 = 2.0;
pub const MAX_OUTPUT_TOKENS_MAX: i32 = 32768;
pub const CONTEXT_MESSAGES_MAX: i32 = 200;
pub const CONTEXT_MESSAGES_DEFAULT: i32 = 20;
pub const MAX_OUTPUT_TOKENS_DEFAULT: i32 = 1024;
pub const SYSTEM_PROMPT_MAX_CHARS: usize = 8000;
pub const MODEL_MAX_CHARS: usize = 200;
pub const API_KEY_MAX_CHARS: usize = 1024;

/// A model name as the provider knows it (`gpt-4o-mini`, `llama3.1:8b`, `openai/gpt-4o`):
/// 1–200 printable ASCII characters, no white space.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ModelName(String);

fn printable_ascii(raw: &str, max: usize, what: &'static str) -> Result<(), Rejection> {
    let len = raw.chars().count();
    if len == 0 {
        return Err(Rejection::new("empty", "must not be empty"));
    }
    if len > max {
        return Err(Rejection::new(
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    if !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Rejection::new("invalid_characters", what));
    }
    Ok(())
}

impl ModelName {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        printable_ascii(
            raw,
            MODEL_MAX_CHARS,
            "may contain only printable ASCII characters without spaces",
        )?;
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An agent's system prompt: at most 8000 characters, no NUL; only white space means none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SystemPrompt(String);

impl SystemPrompt {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        if raw.contains('\0') {
            return Err(Rejection::new(
                "invalid_characters",
                "must not contain NUL characters",
            ));
        }
        if raw.chars().count() > SYSTEM_PROMPT_MAX_CHARS {
            return Err(Rejection::new(
                "too_long",
                format!("must be at most {SYSTEM_PROMPT_MAX_CHARS} characters"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The prompt, or `None` when it is only white space.
    #[must_use]
    pub fn into_option(self) -> Option<String> {
        (!self.0.trim().is_empty()).then_some(self.0)
    }
}

/// A model endpoint's API key, as given once: 1–1024 printable ASCII characters. Never shown
/// again: sealed at rest (DATA-3), masked in every answer (`****abcd`), redacted in `Debug`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub struct ModelApiKey(SecretString);

impl fmt::Debug for ModelApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelApiKey(****)")
    }
}

impl ModelApiKey {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        printable_ascii(
            raw,
            API_KEY_MAX_CHARS,
            "may contain only printable ASCII characters without spaces",
        )?;
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// The last four characters, for the masked form (a shorter key shows none of itself).
    #[must_use]
    pub fn hint(&self) -> String {
        use secrecy::ExposeSecret;
        let text = self.0.expose_secret();
        if text.len() >= 12 {
            text[text.len() - 4..].to_owned()
        } else {
            String::new()
        }
    }
}

crate::types::parse_from_string!(ModelName, SystemPrompt, ModelApiKey);

crate::types::schema!(
    ModelName,
    crate::types::string_schema(
        "1–200 printable ASCII characters without spaces",
        1,
        Some(MODEL_MAX_CHARS),
        "^[!-~]{1,200}$",
    )
);
crate::types::schema!(
    SystemPrompt,
    crate::types::string_schema(
        "At most 8000 characters, no NUL; only white space means none",
        0,
        Some(SYSTEM_PROMPT_MAX_CHARS),
        r"^[^\x00]{0,8000}$",
    )
);
crate::types::schema!(
    ModelApiKey,
    crate::types::string_schema(
        "1–1024 printable ASCII characters without spaces; never shown again",
        1,
        Some(API_KEY_MAX_CHARS),
        "^[!-~]{1,1024}$",
    )
);

/// `****abcd` for a key with hint `abcd`, `****` for one too short to show any of it.
#[must_use]
pub fn masked_key(hint: &str) -> String {
    format!("****{hint}")
}

/// Whether `text` mentions the agent called `name`: `@` then the name, without regard to case,
/// where the `@` starts the text or follows a character that is not a letter, digit or `_`, and
/// the name ends the text or is followed by a character that is not a letter, digit, `_` or
/// `-`. So `@Helper, hi` and `(@helper)` mention `Helper`; `me@helper.org` does not (a letter
/// before `@`), nor does `@helpers`.
#[must_use]
pub fn mentions(text: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let lower_text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let lower_name: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let n = lower_name.len();
    (0..lower_text.len()).any(|i| {
        lower_text[i] == '@'
            && (i == 0 || !word(lower_text[i - 1]))
            && lower_text.get(i + 1..i + 1 + n) == Some(&lower_name[..])
            && lower_text
                .get(i + 1 + n)
                .is_none_or(|&c| !(word(c) || c == '-'))
    })
}

/// A name the model may be given for a message's author (the Chat Completions `name` field:
/// `^[a-zA-Z0-9_-]{1,64}$`): the username with every other character replaced by `_`.
#[must_use]
pub fn context_name(username: &str) -> String {
    let cleaned: String = username
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "user".to_owned()
    } else {
        cleaned
    }
}

/// Why an agent answers a message, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A direct conversation with the agent: every message.
    Direct,
    /// `@name` in a group.
    Mention,
    /// A reply to one of the agent's messages.
    Reply,
}

/// What decides whether an agent answers a message: facts about the message and its
/// conversation, gathered by the dispatcher.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The author is a person (not a bot or another agent).
    pub from_person: bool,
    pub deleted: bool,
    pub direct: bool,
    pub text: &'a str,
    /// The message replies to one of this agent's messages.
    pub replies_to_agent: bool,
}

/// AGENT-2: in a direct conversation every message; in a group a mention or a reply to the
/// agent. Never a bot's or agent's message (no loops, its own included), never a deleted one.
#[must_use]
pub fn trigger(msg: Incoming<'_>, agent_name: &str) -> Option<Trigger> {
    if !msg.from_person || msg.deleted {
        return None;
    }
    if msg.direct {
        Some(Trigger::Direct)
    } else if msg.replies_to_agent {
        Some(Trigger::Reply)
    } else if mentions(msg.text, agent_name) {
        Some(Trigger::Mention)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_follow_the_rule() {
        assert!(mentions("@Helper hi", "helper"));
        assert!(mentions("hi @helper", "Helper"));
        assert!(mentions("(@helper), what now", "helper"));
        assert!(mentions("@Support Bot please", "Support Bot"));
        assert!(mentions("ask @helper.", "helper"));
        assert!(!mentions("me@helper.org", "helper"));
        assert!(!mentions("@helpers", "helper"));
        assert!(!mentions("@helper-2", "helper"));
        assert!(!mentions("helper", "helper"));
        assert!(!mentions("@", "helper"));
        assert!(!mentions("@helper", " "));
    }

    #[test]
    fn triggers() {
        let base = Incoming {
            from_person: true,
            deleted: false,
            direct: false,
            text: "hello",
            replies_to_agent: false,
        };
        assert_eq!(trigger(base, "a"), None);
        let direct = Incoming {
            direct: true,
            ..base
        };
        assert_eq!(trigger(direct, "a"), Some(Trigger::Direct));
        let bot = Incoming {
            from_person: false,
            ..direct
        };
        assert_eq!(trigger(bot, "a"), None);
        let deleted = Incoming {
            deleted: true,
            ..direct
        };
        assert_eq!(trigger(deleted, "a"), None);
        let mention = Incoming {
            text: "hey @a",
            ..base
        };
        assert_eq!(trigger(mention, "a"), Some(Trigger::Mention));
        let reply = Incoming {
            replies_to_agent: true,
            ..base
        };
        assert_eq!(trigger(reply, "a"), Some(Trigger::Reply));
    }

    #[test]
    fn values() {
        assert!(ModelName::parse("llama3.1:8b").is_ok());
        assert!(ModelName::parse("gpt 4").is_err());
        assert!(ModelName::parse("").is_err());
        assert!(ModelName::parse(&"m".repeat(201)).is_err());
        assert!(SystemPrompt::parse(&"p".repeat(8001)).is_err());
        assert_eq!(SystemPrompt::parse("  ").unwrap().into_option(), None);
        let key = ModelApiKey::parse("sk-test-1234567890abcd").unwrap();
        assert_eq!(key.hint(), "abcd");
        assert_eq!(ModelApiKey::parse("short").unwrap().hint(), "");
        assert!(!format!("{key:?}").contains("abcd"));
        assert!(ModelApiKey::parse("has space").is_err());
        assert_eq!(context_name("al.ice"), "al_ice");
    }
}
