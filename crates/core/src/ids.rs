//! Typed identifiers. Every id is a UUIDv7 (time-ordered, so keyset pagination by id follows
//! creation order); the newtypes keep a user id from being passed where an org id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    )*};
}

id_type!(
    UserId,
    SessionId,
    OrgId,
    TeamId,
    InviteId,
    ConversationId,
    MessageId,
    MessageVersionId,
    /// An uploaded file (DATA-1).
    FileId,
    ApiKeyId,
    BotId,
    /// An org's content guard (RATE-6).
    GuardId,
    /// A message queued for review by a flagging guard (RATE-6).
    FlagId,
    /// An OAuth client an org admin registered (MCP-2).
    OAuthClientId,
    /// An OAuth authorization waiting for the user's consent (MCP-2).
    OAuthRequestId,
    /// One consent to an OAuth client: its family of access and refresh tokens (MCP-2).
    GrantId,
);
