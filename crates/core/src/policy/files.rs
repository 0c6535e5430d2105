//! Files (DATA-1, DATA-2): only participants of the conversation that holds a file know it
//! exists. A participant uploads when they may send there (a Viewer or an archived
//! conversation: 403, as for sending) and fetches when they may read.

use super::conversations::{conversation_allows, ConversationAccess, ConversationAction};

/// The answer to an upload or download request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDecision {
    Allow,
    /// A participant who may not do this (403).
    Forbidden,
    /// Anyone else: the conversation and its files stay unknown (404).
    Hidden,
}

fn participant(a: &ConversationAccess) -> bool {
    a.org_role.is_some() && a.participant.is_some()
}

/// Uploading a file into the conversation.
#[must_use]
pub fn may_upload_file(a: &ConversationAccess) -> FileDecision {
    if !participant(a) {
        FileDecision::Hidden
    } else if conversation_allows(a, ConversationAction::SendMessages) {
        FileDecision::Allow
    } else {
        FileDecision::Forbidden
    }
}

/// Getting a download URL for a file the conversation holds.
#[must_use]
pub fn may_fetch_file(a: &ConversationAccess) -> FileDecision {
    if participant(a) && conversation_allows(a, ConversationAction::Read) {
        FileDecision::Allow
    } else {
        FileDecision::Hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConversationKind, ConversationRole, OrgRole};

    fn access(
        org_role: Option<OrgRole>,
        participant: Option<ConversationRole>,
    ) -> ConversationAccess {
        ConversationAccess {
            org_role,
            participant,
            in_scope: true,
            kind: ConversationKind::Group,
            archived: false,
        }
    }

    #[test]
    fn only_participants_know_files() {
        use FileDecision::*;
        let member = Some(ConversationRole::Member);
        // (org role, may upload, may download). A Viewer takes part but may not send: 403 to
        // upload, yet may download.
        for (role, upload, fetch) in [
            (OrgRole::Member, Allow, Allow),
            (OrgRole::Viewer, Forbidden, Allow),
        ] {
            let a = access(Some(role), member);
            assert_eq!(may_upload_file(&a), upload, "{role:?} uploads");
            assert_eq!(may_fetch_file(&a), fetch, "{role:?} downloads");
        }
        // An org admin who does not take part, a member in scope, another org: 404.
        for a in [
            access(Some(OrgRole::Admin), None),
            access(Some(OrgRole::Member), None),
            access(None, member),
        ] {
            assert_eq!(may_upload_file(&a), Hidden);
            assert_eq!(may_fetch_file(&a), Hidden);
        }
        let mut archived = access(Some(OrgRole::Member), member);
        archived.archived = true;
        assert_eq!(may_upload_file(&archived), Forbidden);
    }
}
