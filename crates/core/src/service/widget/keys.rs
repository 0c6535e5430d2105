//! Widget keys: made, changed and revoked by the org's owners and admins, each with its two
//! bot accounts and a sealed identity secret.

use super::{
    display_name, secret_ref, CreatedWidgetKey, NewWidgetKeySettings, Visitor, WidgetKeyChanges,
    VISITOR_USERNAME_PREFIX, WIDGET_USERNAME_PREFIX,
};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::ids::*;
use crate::policy::OrgAction;
use crate::service::bots::unusable_token_hash;
use crate::service::{of_org, Actor, Result, Services};
use crate::store::widget::*;
use crate::store::NewBot;
use crate::types::*;
use crate::widget::*;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

impl Services {
    async fn org_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        write: bool,
    ) -> Result<WidgetKey> {
        self.require_org_settings(actor, org, OrgAction::ManageWidgetKeys, write)
            .await?;
        of_org(
            self.store.widget_key(id).await,
            org,
            |k| k.org_id,
            "widget key",
        )
    }

    /// 404 unless `team` is a team of `org`.
    async fn check_widget_team(&self, org: OrgId, team: TeamId) -> Result<()> {
        // An id in the body that names nothing here: 404, like one in the path.
        of_org(self.store.team(team).await, org, |t| t.org_id, "team").map(drop)
    }

    /// 404 unless `agent` is an agent of `org`.
    async fn check_widget_agent(&self, org: OrgId, agent: Uuid) -> Result<()> {
        of_org(self.store.agent(agent).await, org, |a| a.org_id, "agent").map(drop)
    }

    fn check_origins(origins: &[WidgetOrigin]) -> Result<Vec<WidgetOrigin>> {
        let mut list = origins.to_vec();
        list.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        list.dedup();
        if list.is_empty() || list.len() > MAX_ORIGINS {
            return Err(ServiceError::invalid(
                "allowed_origins",
                "invalid_length",
                format!("must list 1 to {MAX_ORIGINS} origins"),
            ));
        }
        Ok(list)
    }

    /// Creates a widget key with its two bot accounts; its identity secret is answered once.
    pub async fn create_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        s: NewWidgetKeySettings,
    ) -> Result<CreatedWidgetKey> {
        self.require_org_settings(actor, org, OrgAction::ManageWidgetKeys, true)
            .await?;
        let origins = Self::check_origins(&s.allowed_origins)?;
        self.check_widget_team(org, s.team_id).await?;
        if let Some(a) = s.agent_id {
            self.check_widget_agent(org, a).await?;
        }
        let visitor_name = display_name(&format!("Visitor ({})", s.name.as_str()))?;
        let (vbot, vaccount) =
            self.new_bot(actor, org, (visitor_name, VISITOR_USERNAME_PREFIX), None)?;
        let (sbot, saccount) =
            self.new_bot(actor, org, (s.name.clone(), WIDGET_USERNAME_PREFIX), None)?;
        let unusable = [unusable_token_hash(), unusable_token_hash()];
        let id = Uuid::now_v7();
        let value = crate::token::generate(crate::token::TokenKind::WidgetKey);
        let secret = SecretString::from(new_identity_secret());
        let sealed = self
            .seal_secret(secret_ref(id).binding(), secret.expose_secret().as_bytes())
            .await?;
        let now = vbot.created_at;
        let key = WidgetKey {
            id,
            org_id: org,
            name: s.name.into_inner(),
            key: value.expose_secret().to_owned(),
            allowed_origins: origins,
            team_id: s.team_id,
            agent_id: s.agent_id,
            identity: s.identity,
            prechat_form: s.prechat_form,
            visitor_user_id: vbot.user_id,
            system_user_id: sbot.user_id,
            visitor_bot_id: vbot.id,
            system_bot_id: sbot.id,
            created_by: Some(actor.user.id),
            created_at: now,
            updated_at: now,
            revoked_at: None,
        };
        let record = WidgetSecretRecord {
            sealed,
            created_at: now,
        };
        let audit = self
            .audit(actor, "widget_key.created")
            .resource("widget_key", id)
            .org(org)
            .detail(serde_json::json!({
                "origins": key.allowed_origins, "team_id": key.team_id,
                "agent_id": key.agent_id, "identity": key.identity,
            }));
        let new = NewWidgetKey {
            visitor_bot: NewBot {
                bot: &vbot,
                account: &vaccount,
                token_hash: &unusable[0],
            },
            system_bot: NewBot {
                bot: &sbot,
                account: &saccount,
                token_hash: &unusable[1],
            },
            key: &key,
            secret: &record,
        };
        let members = self.store.create_widget_key(&new, &[audit]).await?;
        for m in &members {
            self.announce_member_added(m);
        }
        self.settle_sealed(
            secret_ref(id),
            record.sealed,
            secret.expose_secret().as_bytes(),
        )
        .await?;
        Ok(CreatedWidgetKey {
            key,
            identity_secret: secret,
        })
    }

    /// The org's live widget keys.
    pub async fn widget_keys(&self, actor: &Actor, org: OrgId) -> Result<Vec<WidgetKey>> {
        self.require_org_settings(actor, org, OrgAction::ManageWidgetKeys, false)
            .await?;
        Ok(self.store.widget_keys(org).await?)
    }

    /// Changes a key; the audit row names the changed fields.
    pub async fn update_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        c: WidgetKeyChanges,
    ) -> Result<WidgetKey> {
        self.org_widget_key(actor, org, id, true).await?;
        let origins = c
            .allowed_origins
            .as_deref()
            .map(Self::check_origins)
            .transpose()?;
        if let Some(t) = c.team_id {
            self.check_widget_team(org, t).await?;
        }
        if let Some(Some(a)) = c.agent_id {
            self.check_widget_agent(org, a).await?;
        }
        let mut fields = Vec::new();
        for (set, name) in [
            (c.name.is_some(), "name"),
            (origins.is_some(), "allowed_origins"),
            (c.team_id.is_some(), "team_id"),
            (c.agent_id.is_some(), "agent_id"),
            (c.identity.is_some(), "identity"),
            (c.prechat_form.is_some(), "prechat_form"),
        ] {
            if set {
                fields.push(name);
            }
        }
        let audit = self
            .audit(actor, "widget_key.updated")
            .resource("widget_key", id)
            .org(org)
            .detail(serde_json::json!({ "fields": fields }));
        let patch = WidgetKeyPatch {
            name: c.name.map(DisplayName::into_inner),
            allowed_origins: origins,
            team_id: c.team_id,
            agent_id: c.agent_id,
            identity: c.identity,
            prechat_form: c.prechat_form,
        };
        let now = self.clock.now();
        let updated = (self
            .store
            .update_widget_key(id, &patch, now, &[audit])
            .await)
            .map_err(ServiceError::missing("widget key"))?;
        // Open visitor streams whose page the key no longer admits end, on every node.
        if patch.allowed_origins.is_some() || patch.identity.is_some() {
            self.emit(Event::control(Control::WidgetKey {
                key: id,
                revoked: false,
            }));
        }
        Ok(updated)
    }

    /// Revokes a key: every widget call with it is refused from now on; its conversations and
    /// their messages stay with the support team.
    pub async fn delete_widget_key(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<()> {
        self.org_widget_key(actor, org, id, true).await?;
        let audit = self
            .audit(actor, "widget_key.revoked")
            .resource("widget_key", id)
            .org(org);
        let now = self.clock.now();
        (self.store.revoke_widget_key(id, now, &[audit]).await)
            .map_err(ServiceError::missing("widget key"))?;
        // Its open visitor streams end, on every node.
        self.emit(Event::control(Control::WidgetKey {
            key: id,
            revoked: true,
        }));
        Ok(())
    }

    /// Whether `key` (still live, as stored now) admits visitor `v` on a page of `origin`:
    /// what an open visitor stream asks when its key changed.
    pub async fn widget_key_admits(&self, v: &Visitor, origin: Option<&str>) -> Result<bool> {
        let key = match self.store.widget_key(v.key.id).await {
            Ok(k) => k,
            Err(crate::store::StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let origin_ok = origin.is_some_and(|o| origin_listed(&key.allowed_origins, o));
        let identity_ok = key.identity == IdentityMode::Optional || v.session.verified;
        Ok(key.revoked_at.is_none() && origin_ok && identity_ok)
    }

    /// The opened identity secret of `key`.
    pub(super) async fn widget_identity_secret(&self, key: &WidgetKey) -> Result<SecretString> {
        let record = (self.store.widget_key_secret(key.id).await?)
            .ok_or_else(|| ServiceError::Internal("a widget key has no identity secret".into()))?;
        (self.open_sealed_text(secret_ref(key.id).binding(), &record.sealed)).await
    }
}
