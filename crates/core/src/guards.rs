//! Content guards (RATE-6, AGENT-5): an org's rules for what may be posted, as values.
//!
//! A guard is a blocklist (whole words, case-insensitive, Unicode-aware), a list of regular
//! expressions (the `regex` crate: a linear-time engine, with size limits, so no pattern can
//! make a check slow), an external moderation endpoint (the OpenAI moderation API shape), or a
//! guard agent (a model asked to answer ALLOW or DENY). Its mode blocks (the post is refused
//! with 422 `content_blocked`, never stored) or flags (delivered and queued for review).
//!
//! Blocklists and regexes read the text as its readers see it ([`fold`]): zero-width and other
//! default-ignorable characters dropped, then NFKC — so `d\u{200B}arn`, fullwidth `ｄａｒｎ`
//! or a decomposed accent is screened as the word it shows. Regexes are also run on the text
//! as sent (a pattern may be written for either form).
//!
//! This module parses a guard's settings ([`GuardRules::parse`]) and compiles an org's guards
//! into [`OrgGuards`], which `Services::screen` runs; the remote kinds are checked through
//! [`RemoteScreen`], which the server implements with its SSRF guard (core makes no request).

use crate::ids::GuardId;
use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::{props::DefaultIgnorableCodePoint, CodePointSetData};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// Terms in one blocklist, at most.
pub const MAX_TERMS: usize = 1000;
/// Characters of one blocklist term, at most.
pub const MAX_TERM_CHARS: usize = 100;
/// Patterns in one regex guard, at most.
pub const MAX_PATTERNS: usize = 100;
/// Characters of one pattern, at most.
pub const MAX_PATTERN_CHARS: usize = 1000;
/// The compiled size one pattern may reach (`RegexBuilder::size_limit`).
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// The compiled size a regex guard's whole set of patterns may reach: what is checked when
/// it is saved is what is built to screen (before, up to `PATTERN_SIZE_LIMIT` a pattern — a
/// hundred `\w{18}` made one guard compile to about 100 MiB, twice over).
pub const PATTERNS_SIZE_LIMIT: usize = 4 << 20;
/// The lazy DFA's cache per pattern set (`dfa_size_limit`).
pub const DFA_SIZE_LIMIT: usize = 2 << 20;
/// The compiled size of a whole blocklist (all its terms as one expression).
pub const BLOCKLIST_SIZE_LIMIT: usize = 16 << 20;
/// Guards per org, at most.
pub const MAX_GUARDS_PER_ORG: usize = 50;
/// A moderation endpoint's answer is awaited this long unless the guard says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// The range a guard's `timeout_ms` may take.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=10_000;

/// What a guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    Blocklist,
    Regex,
    ModerationEndpoint,
    Agent,
}

impl GuardKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blocklist => "blocklist",
            Self::Regex => "regex",
            Self::ModerationEndpoint => "moderation_endpoint",
            Self::Agent => "agent",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Blocklist,
            Self::Regex,
            Self::ModerationEndpoint,
            Self::Agent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether checking needs a request to another service (not run by `screen_local`).
    #[must_use]
    pub const fn is_remote(self) -> bool {
        matches!(self, Self::ModerationEndpoint | Self::Agent)
    }
}

/// What a guard does with a post it objects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// Refused with 422 `content_blocked`, never stored.
    Block,
    /// Delivered, and queued for review.
    Flag,
}

impl GuardMode {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Flag => "flag",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Self::Block),
            "flag" => Some(Self::Flag),
            _ => None,
        }
    }
}

/// What a remote guard does when its check times out or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the post through (the error is counted).
    Open,
    /// Refuse it with 422 `content_blocked` (the error is counted).
    Closed,
}

/// What is being screened: a post by a person or bot, or an AI agent's answer (AGENT-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Message,
    AgentAnswer,
}

/// The verdict of an org's guards on one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening {
    Allow,
    /// Deliver, and queue for review by each of these guards.
    Flag(Vec<GuardId>),
    /// Refuse: the first guard in order that blocked.
    Block {
        guard: GuardId,
        name: String,
    },
}

/// Why a guard's settings were refused: the field (`terms/3`, `patterns/0`, `timeout_ms`), a
/// machine code and a sentence (a 422 once the service maps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl RuleError {
    fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A guard's settings as stored (`guards.config`): everything but a moderation endpoint's API
/// key, which is sealed apart (DATA-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GuardRules {
    Blocklist {
        terms: Vec<String>,
    },
    Regex {
        patterns: Vec<String>,
    },
    ModerationEndpoint {
        url: String,
        timeout_ms: u64,
        fail: FailMode,
    },
    Agent {
        agent_id: Uuid,
        fail: FailMode,
    },
}

impl GuardRules {
    #[must_use]
    pub const fn kind(&self) -> GuardKind {
        match self {
            Self::Blocklist { .. } => GuardKind::Blocklist,
            Self::Regex { .. } => GuardKind::Regex,
            Self::ModerationEndpoint { .. } => GuardKind::ModerationEndpoint,
            Self::Agent { .. } => GuardKind::Agent,
        }
    }

    /// Checks the settings a manager gave (the URL has passed the SSRF guard already): 422
    /// naming the field (`terms/3`, `patterns/0`, `timeout_ms`) when one is not acceptable.
    /// Terms are trimmed and repeated ones (in any case) dropped.
    pub fn validated(self) -> Result<Self, RuleError> {
        match self {
            Self::Blocklist { terms } => {
                let terms = clean_terms(terms)?;
                blocklist_regex(&terms)?;
                Ok(Self::Blocklist { terms })
            }
            Self::Regex { patterns } => {
                check_patterns(&patterns)?;
                Ok(Self::Regex { patterns })
            }
            Self::ModerationEndpoint {
                url,
                timeout_ms,
                fail,
            } => {
                if !TIMEOUT_MS_RANGE.contains(&timeout_ms) {
                    return Err(RuleError::new(
                        "timeout_ms",
                        "invalid",
                        format!(
                            "between {} and {} milliseconds",
                            TIMEOUT_MS_RANGE.start(),
                            TIMEOUT_MS_RANGE.end()
                        ),
                    ));
                }
                Ok(Self::ModerationEndpoint {
                    url,
                    timeout_ms,
                    fail,
                })
            }
            // That the agent is one of the guard's org is checked by the service.
            agent @ Self::Agent { .. } => Ok(agent),
        }
    }
}

fn clean_terms(terms: Vec<String>) -> Result<Vec<String>, RuleError> {
    if terms.is_empty() || terms.len() > MAX_TERMS {
        return Err(RuleError::new(
            "terms",
            "invalid",
            format!("list 1 to {MAX_TERMS} terms"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(terms.len());
    let mut seen = std::collections::HashSet::new();
    for (i, term) in terms.into_iter().enumerate() {
        let t = term.trim();
        if t.is_empty() || t.chars().count() > MAX_TERM_CHARS || t.chars().any(char::is_control) {
            return Err(RuleError::new(
                format!("terms/{i}"),
                "invalid",
                format!("a term is 1 to {MAX_TERM_CHARS} characters without control characters"),
            ));
        }
        let folded = fold(t);
        if folded.trim().is_empty() {
            return Err(RuleError::new(
                format!("terms/{i}"),
                "invalid",
                "a term has a visible character (zero-width and other invisible characters are ignored when screening)",
            ));
        }
        if seen.insert(folded.to_lowercase()) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// One expression for a whole blocklist: any term, case-insensitive, not inside a longer word
/// (the characters around it, if any, are not word characters in Unicode's sense). Terms are
/// folded as the text they are matched against is.
fn blocklist_regex(terms: &[String]) -> Result<Regex, RuleError> {
    let alternatives: Vec<String> = terms.iter().map(|t| regex::escape(&fold(t))).collect();
    RegexBuilder::new(&format!(r"(?:^|\W)(?:{})(?:\W|$)", alternatives.join("|")))
        .case_insensitive(true)
        .size_limit(BLOCKLIST_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|_| {
            RuleError::new(
                "terms",
                "blocklist_too_large",
                "these terms together are too large to check; use fewer or shorter terms",
            )
        })
}

fn check_patterns(patterns: &[String]) -> Result<(), RuleError> {
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(RuleError::new(
            "patterns",
            "invalid",
            format!("list 1 to {MAX_PATTERNS} patterns"),
        ));
    }
    for (i, p) in patterns.iter().enumerate() {
        if p.is_empty() || p.chars().count() > MAX_PATTERN_CHARS {
            return Err(RuleError::new(
                format!("patterns/{i}"),
                "invalid_pattern",
                format!("a pattern is 1 to {MAX_PATTERN_CHARS} characters"),
            ));
        }
        // Patterns are stored as given (PostgreSQL's jsonb cannot hold NUL); a pattern matches
        // a control character by its escape (`\x00`, `\t`), never by the character itself.
        if p.chars().any(char::is_control) {
            return Err(RuleError::new(
                format!("patterns/{i}"),
                "invalid_pattern",
                r"a pattern has no control characters: write them as escapes (\x00, \t)",
            ));
        }
        let built = RegexBuilder::new(p)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build();
        if let Err(e) = built {
            let why = match e {
                regex::Error::CompiledTooBig(_) => "the pattern compiles too large".to_owned(),
                // The syntax error names the position in the manager's own pattern.
                other => format!("not a valid pattern: {}", one_line(&other.to_string())),
            };
            return Err(RuleError::new(
                format!("patterns/{i}"),
                "invalid_pattern",
                why,
            ));
        }
    }
    // The set as `compile` builds it for screening, within its budget.
    if pattern_set(patterns).is_err() {
        return Err(RuleError::new(
            "patterns",
            "invalid_pattern",
            format!(
                "the patterns compile too large together (at most {} MiB)",
                PATTERNS_SIZE_LIMIT >> 20
            ),
        ));
    }
    Ok(())
}

/// A regex guard's patterns as one set, within [`PATTERNS_SIZE_LIMIT`].
fn pattern_set(patterns: &[String]) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .size_limit(PATTERNS_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
}

/// A text as blocklists and regexes read it: default-ignorable code points (zero-width spaces
/// and joiners, soft hyphens, bidi controls, variation selectors, tag characters) dropped,
/// then Unicode's compatibility normalisation (NFKC: fullwidth and mathematical letters,
/// ligatures, decomposed accents become the plain composed forms a reader takes them for).
/// ASCII text is its own fold and is not copied. Look-alike letters of other scripts
/// (Cyrillic `а` for Latin `a`) are not folded.
#[must_use]
pub fn fold(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let shown: Cow<'_, str> = if text.chars().any(|c| ignorable.contains(c)) {
        Cow::Owned(text.chars().filter(|c| !ignorable.contains(*c)).collect())
    } else {
        Cow::Borrowed(text)
    };
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    if nfkc.is_normalized(&shown) {
        shown
    } else {
        Cow::Owned(nfkc.normalize(&shown).into_owned())
    }
}

/// The last line of `regex`'s multi-line syntax error (the reason).
fn one_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// A remote guard as `RemoteScreen` needs it: where to ask, with what, for how long.
#[derive(Clone)]
pub struct RemoteGuard {
    pub id: GuardId,
    pub target: RemoteTarget,
    pub timeout: Duration,
}

impl std::fmt::Debug for RemoteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteGuard")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where a remote guard asks.
#[derive(Clone)]
pub enum RemoteTarget {
    /// An OpenAI-moderation-shaped endpoint; the key goes in `Authorization: Bearer`.
    Moderation {
        url: String,
        api_key: Option<SecretString>,
    },
    /// A guard agent's model (AGENT-5), with the agent's own endpoint, model and opened key,
    /// asked to answer ALLOW or DENY.
    Agent {
        endpoint: String,
        model: String,
        api_key: Option<SecretString>,
    },
}

/// How long a guard agent's model may take, from the request to the whole answer (the
/// server's agent timeouts apply within it).
pub const AGENT_GUARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a remote service answered: whether it objects, and the tokens a guard agent's model
/// says it used (`None`: a moderation endpoint, or a provider that did not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAnswer {
    pub objects: bool,
    pub tokens: Option<(u64, u64)>,
}

/// Why a remote check gave no verdict (the guard's fail mode decides). The text names the
/// kind of failure only — never the content, the key or the endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RemoteFailure(pub String);

/// The checks that need another service (moderation endpoints, guard agents), made by the
/// server through its SSRF guard and injected into `Services`.
#[async_trait::async_trait]
pub trait RemoteScreen: Send + Sync + 'static {
    /// Whether the service objects to `text` (and what a model call cost).
    async fn objects(&self, guard: &RemoteGuard, text: &str)
        -> Result<RemoteAnswer, RemoteFailure>;
}

/// The `RemoteScreen` of services built without one: every remote check fails (so each
/// guard's fail mode applies).
pub struct NoRemoteScreen;

#[async_trait::async_trait]
impl RemoteScreen for NoRemoteScreen {
    async fn objects(&self, _: &RemoteGuard, _: &str) -> Result<RemoteAnswer, RemoteFailure> {
        Err(RemoteFailure("remote checks are not available".into()))
    }
}

/// How one guard checks.
#[derive(Clone)]
pub enum Check {
    Words(Regex),
    Patterns(RegexSet),
    Remote {
        guard: RemoteGuard,
        fail: FailMode,
    },
    /// A guard agent: the agent is read (and its budget reserved) at each check, so a change
    /// of its endpoint, model or key applies at once.
    Agent {
        agent_id: Uuid,
        fail: FailMode,
    },
}

/// One enabled guard, ready to run.
#[derive(Clone)]
pub struct CompiledGuard {
    pub id: GuardId,
    pub name: String,
    pub mode: GuardMode,
    pub check: Check,
}

impl CompiledGuard {
    /// The in-process check of a blocklist or regex guard (`None` for a remote one), given
    /// the text as sent and its [`fold`]: a blocklist reads the fold, a regex either.
    #[must_use]
    pub fn local_objects(&self, text: &str, folded: &str) -> Option<bool> {
        match &self.check {
            Check::Words(re) => Some(re.is_match(folded)),
            Check::Patterns(set) => Some(set.is_match(folded) || set.is_match(text)),
            Check::Remote { .. } | Check::Agent { .. } => None,
        }
    }
}

/// An org's enabled guards in order, compiled: what the cache keeps per org. Empty for an org
/// without guards, so a send there costs one cache hit.
#[derive(Clone, Default)]
pub struct OrgGuards {
    pub guards: Vec<CompiledGuard>,
}

impl OrgGuards {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// Whether a blocklist or regex guard is among them (the text is folded only then).
    #[must_use]
    pub fn has_local(&self) -> bool {
        self.guards
            .iter()
            .any(|g| matches!(g.check, Check::Words(_) | Check::Patterns(_)))
    }

    #[must_use]
    pub fn has_remote(&self) -> bool {
        self.guards
            .iter()
            .any(|g| matches!(g.check, Check::Remote { .. } | Check::Agent { .. }))
    }
}

/// Compiles stored, validated settings into a check; a moderation endpoint takes its opened
/// API key. Settings that no longer compile (never, once validated) answer why.
pub fn compile(
    id: GuardId,
    rules: &GuardRules,
    api_key: Option<SecretString>,
) -> Result<Check, String> {
    let broken = |_| format!("guard {id} no longer compiles");
    Ok(match rules {
        GuardRules::Blocklist { terms } => {
            Check::Words(blocklist_regex(terms).map_err(|e| format!("guard {id}: {}", e.message))?)
        }
        GuardRules::Regex { patterns } => Check::Patterns(pattern_set(patterns).map_err(broken)?),
        GuardRules::ModerationEndpoint {
            url,
            timeout_ms,
            fail,
        } => Check::Remote {
            guard: RemoteGuard {
                id,
                target: RemoteTarget::Moderation {
                    url: url.clone(),
                    api_key,
                },
                timeout: Duration::from_millis(*timeout_ms),
            },
            fail: *fail,
        },
        GuardRules::Agent { agent_id, fail } => Check::Agent {
            agent_id: *agent_id,
            fail: *fail,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(terms: &[&str]) -> Regex {
        let terms = clean_terms(terms.iter().map(|t| (*t).to_owned()).collect()).unwrap();
        blocklist_regex(&terms).unwrap()
    }

    #[test]
    fn blocklist_matches_whole_words_in_any_case() {
        let re = words(&["darn", "Straße", "c++"]);
        assert!(re.is_match("oh darn"));
        assert!(re.is_match("DARN!"));
        assert!(re.is_match("(darn)"));
        assert!(!re.is_match("darned"));
        assert!(!re.is_match("undarn"));
        assert!(re.is_match("DIE STRAßE"));
        assert!(!re.is_match("Straßenbahn"));
        assert!(re.is_match("I like c++ a lot"));
        assert!(!re.is_match("c++x"));
        // Non-Latin scripts: word characters are Unicode's.
        let cyr = words(&["слово"]);
        assert!(cyr.is_match("это СЛОВО тут"));
        assert!(!cyr.is_match("словообразование"));
    }

    fn guard(check: Check) -> CompiledGuard {
        CompiledGuard {
            id: GuardId::from(Uuid::nil()),
            name: "g".into(),
            mode: GuardMode::Block,
            check,
        }
    }

    fn objects(g: &CompiledGuard, text: &str) -> bool {
        g.local_objects(text, &fold(text)).unwrap()
    }

    #[test]
    fn invisible_characters_and_compatibility_forms_hide_no_word() {
        let g = guard(Check::Words(words(&["darn"])));
        for hidden in [
            "oh d\u{200B}arn",                         // zero-width space
            "oh da\u{200D}rn",                         // zero-width joiner
            "oh d\u{00AD}arn",                         // soft hyphen
            "oh \u{2066}darn\u{2069}",                 // bidi isolates
            "oh darn\u{FE0F}",                         // a variation selector
            "oh \u{FF44}\u{FF41}\u{FF52}\u{FF4E}",     // fullwidth
            "oh \u{1D41D}\u{1D41A}\u{1D42B}\u{1D427}", // mathematical bold
            "oh DARN\u{E0041}",                        // a tag character
        ] {
            assert!(objects(&g, hidden), "{hidden:?} was not screened as darn");
        }
        assert!(!objects(&g, "oh d arn"));
        assert!(!objects(&g, "oh darned"));
        // Accents compose: a blocked word written with a combining accent is that word.
        let accented = guard(Check::Words(words(&["café"])));
        assert!(objects(&accented, "a cafe\u{0301} nearby"));
        // A term written in a compatibility form blocks the plain word, and dedupes with it.
        let wide = guard(Check::Words(words(&["\u{FF44}arn"])));
        assert!(objects(&wide, "oh darn"));
        assert_eq!(
            clean_terms(vec!["darn".into(), "\u{FF44}ARN".into()]).unwrap(),
            vec!["darn".to_owned()]
        );
        // A term of invisible characters only would match every word boundary.
        let e = clean_terms(vec!["ok".into(), "\u{200B}\u{200D}".into()]).unwrap_err();
        assert_eq!(e.field, "terms/1");
    }

    #[test]
    fn regexes_read_the_text_as_sent_and_as_shown() {
        let g = guard(Check::Patterns(
            pattern_set(&[r"(?i)\bfree\s+money\b".to_owned(), "\u{200B}{3}".to_owned()]).unwrap(),
        ));
        assert!(objects(&g, "get FREE\u{200B} money now"));
        assert!(objects(&g, "get \u{FF26}REE money"));
        // A pattern written for the invisible characters themselves still sees them.
        assert!(objects(&g, "a\u{200B}\u{200B}\u{200B}b"));
        assert!(!objects(&g, "free moneys"));
    }

    #[test]
    fn ascii_is_its_own_fold() {
        assert!(matches!(fold("plain text, 123"), Cow::Borrowed(_)));
        assert!(matches!(fold("caf\u{E9} ok"), Cow::Borrowed(_)));
        assert_eq!(fold("caf\u{65}\u{301}"), "caf\u{E9}");
        assert_eq!(fold("\u{FB01}le"), "file");
    }

    #[test]
    fn terms_are_checked_and_deduplicated() {
        let bad = clean_terms(vec!["ok".into(), "  ".into()]).unwrap_err();
        assert_eq!(bad.field, "terms/1");
        assert_eq!(
            clean_terms(vec!["A".into(), " a ".into(), "b".into()]).unwrap(),
            vec!["A".to_owned(), "b".to_owned()]
        );
        assert!(clean_terms(vec![]).is_err());
        assert!(clean_terms(vec!["x".into(); MAX_TERMS + 1]).is_err());
    }

    #[test]
    fn patterns_are_refused_by_index() {
        let e = check_patterns(&["ok".into(), "(".into()]).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("patterns/1", "invalid_pattern")
        );
        // Over the size limit: a large repetition of a Unicode class.
        let e = check_patterns(&[r"\w{1000}\w{1000}\w{1000}".into()]).unwrap_err();
        assert_eq!(e.field, "patterns/0");
        assert!(e.message.contains("too large"), "{}", e.message);
        // Look-around and back-references do not exist in a linear-time engine.
        assert!(check_patterns(&[r"(a)\1".into()]).is_err());
        assert!(check_patterns(&[r"(?=a)".into()]).is_err());
    }

    /// RATE-6, RATE-1: each pattern small enough alone, a hundred together are refused (the
    /// set screened is the set checked); a modest set still compiles.
    #[test]
    fn a_guards_patterns_are_held_to_one_budget_together() {
        let heavy = r"\w{18}[a-z]".to_owned();
        check_patterns(std::slice::from_ref(&heavy)).unwrap();
        let e = check_patterns(&vec![heavy; MAX_PATTERNS]).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("patterns", "invalid_pattern"));
        let modest: Vec<String> = (0..MAX_PATTERNS)
            .map(|i| format!("order-{i}-[0-9]+"))
            .collect();
        check_patterns(&modest).unwrap();
        let rules = GuardRules::Regex { patterns: modest };
        assert!(compile(GuardId::new(), &rules, None).is_ok());
    }

    #[test]
    fn control_characters_in_patterns_are_refused_but_their_escapes_match() {
        for bad in ["a\0b", "\0", "tab\there", "line\n", "\u{7f}", "\u{85}"] {
            let e = check_patterns(&["ok".into(), bad.into()]).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                ("patterns/1", "invalid_pattern"),
                "{bad:?}"
            );
        }
        // Written as escapes, the same characters are patterns like any other.
        let escaped: Vec<String> = vec![r"a\x00b".into(), r"tab\there".into(), r"\x7f".into()];
        check_patterns(&escaped).unwrap();
        let check = compile(
            GuardId::new(),
            &GuardRules::Regex { patterns: escaped },
            None,
        )
        .unwrap();
        let Check::Patterns(set) = check else {
            panic!("a regex guard compiles to patterns")
        };
        assert!(set.is_match("xa\0by"));
        assert!(set.is_match("a tab\there"));
        assert!(!set.is_match("ab"));
    }

    #[test]
    fn a_pathological_pattern_runs_in_linear_time() {
        let check = compile(
            GuardId::new(),
            &GuardRules::Regex {
                patterns: vec!["(a+)+$".into()],
            },
            None,
        )
        .unwrap();
        let text = format!("{}b", "a".repeat(100_000));
        let started = std::time::Instant::now();
        let Check::Patterns(set) = check else {
            panic!("a regex guard compiles to patterns")
        };
        assert!(!set.is_match(&text));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn agent_guards_compile_to_a_check_of_their_agent() {
        let agent_id = Uuid::now_v7();
        let rules = GuardRules::Agent {
            agent_id,
            fail: FailMode::Closed,
        }
        .validated()
        .unwrap();
        let check = compile(GuardId::new(), &rules, None).unwrap();
        assert!(matches!(
            check,
            Check::Agent { agent_id: a, fail: FailMode::Closed } if a == agent_id
        ));
    }
}
