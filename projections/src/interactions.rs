//! Sign-in interactions in progress: what the Experience API and the hosted pages read.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::interaction::{AuthorizationRequest, InteractionEventRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionRow {
    pub id: String,
    pub client_id: String,
    /// `SignIn`, `Register` or `ForgotPassword`.
    pub event: String,
    pub request: Value,
    /// Verification id → `{kind, userId, oneTimeTokenId?}`.
    pub verifications: Value,
    pub user_id: Option<String>,
    pub submitted: bool,
    pub completed: bool,
    pub grant_id: Option<String>,
    /// The session (keyed hash of its cookie) that stood in for a sign-in, when the
    /// interaction only asked for consent.
    pub session_id: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Second factors set up in this interaction: `{enrolments: {<verification id>: {factor,
    /// userId, vaultRef?, codeHashes?, confirmed, bound}}, skipped?}`.
    #[serde(default)]
    pub mfa: Value,
}

impl InteractionRow {
    pub fn request(&self) -> Result<AuthorizationRequest, ProjectionError> {
        Ok(serde_json::from_value(self.request.clone())?)
    }
}

static INTERACTIONS: Rows<InteractionRow> = Rows::new("interactions", "id");

/// The row after one event. Pure.
fn fold(row: &mut Option<InteractionRow>, event: &RecordedEvent, decoded: InteractionEventRecord) {
    let at = event.occurred_at_ms();
    if let InteractionEventRecord::Started {
        request,
        event: kind,
        expires_at,
    } = &decoded
    {
        *row = Some(InteractionRow {
            id: event.stream_id.clone(),
            client_id: request.client_id.clone(),
            event: kind.as_str().to_owned(),
            request: json!(request),
            verifications: json!({}),
            user_id: None,
            submitted: false,
            completed: false,
            grant_id: None,
            session_id: None,
            expires_at: *expires_at,
            created_at: at,
            updated_at: at,
            mfa: json!({ "enrolments": {} }),
        });
        return;
    }
    let Some(row) = row else { return };
    row.updated_at = at;
    match decoded {
        InteractionEventRecord::Started { .. } | InteractionEventRecord::VerificationFailed(_) => {}
        InteractionEventRecord::EventChanged { event } => row.event = event.as_str().to_owned(),
        InteractionEventRecord::Verified(verified) => {
            if let Value::Object(map) = &mut row.verifications {
                let mut record =
                    json!({ "kind": verified.kind.as_str(), "userId": verified.user_id });
                if let Some(token_id) = verified.one_time_token_id {
                    record["oneTimeTokenId"] = json!(token_id);
                }
                map.insert(verified.verification_id, record);
            }
        }
        InteractionEventRecord::Identified { user_id, .. }
        | InteractionEventRecord::UserRegistered { user_id } => row.user_id = Some(user_id),
        InteractionEventRecord::Submitted { .. } => row.submitted = true,
        InteractionEventRecord::Completed { grant_id, .. } => {
            row.completed = true;
            row.grant_id = Some(grant_id);
        }
        InteractionEventRecord::SessionContinued {
            user_id,
            session_id,
        } => {
            row.user_id = Some(user_id);
            row.session_id = Some(session_id);
            row.submitted = true;
        }
        InteractionEventRecord::Consented { .. } => {}
        InteractionEventRecord::ConsentDenied {} => row.completed = true,
        InteractionEventRecord::MfaEnrolmentStarted { user_id, factor } => {
            let mut enrolment = json!({
                "factor": factor.kind().as_str(), "userId": user_id,
                "confirmed": false, "bound": false,
            });
            match &factor {
                domain::mfa::NewMfaVerification::Totp { vault_ref, .. } => {
                    enrolment["vaultRef"] = json!(vault_ref);
                }
                domain::mfa::NewMfaVerification::BackupCode { code_hashes, .. } => {
                    enrolment["codeHashes"] = json!(code_hashes);
                }
            }
            row.mfa["enrolments"][factor.id()] = enrolment;
        }
        InteractionEventRecord::MfaEnrolmentConfirmed { verification_id } => {
            if let Some(enrolment) = row.mfa["enrolments"].get_mut(&verification_id) {
                enrolment["confirmed"] = json!(true);
            }
        }
        InteractionEventRecord::MfaBound {
            verification_id, ..
        } => {
            if let Some(enrolment) = row.mfa["enrolments"].get_mut(&verification_id) {
                enrolment["bound"] = json!(true);
            }
        }
        InteractionEventRecord::MfaSkipped {} => row.mfa["skipped"] = json!(true),
        InteractionEventRecord::IdentifierLocked { .. }
        | InteractionEventRecord::MessageRateLimited { .. } => {}
    }
}

pub struct Interactions;

#[async_trait]
impl StreamFold for Interactions {
    type Event = InteractionEventRecord;
    type State = Option<InteractionRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "interaction")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Option<InteractionRow>>, ProjectionError> {
        INTERACTIONS.load_entities(db, streams).await
    }

    fn fold(
        state: &mut Option<InteractionRow>,
        event: &RecordedEvent,
        decoded: InteractionEventRecord,
    ) {
        fold(state, event, decoded);
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Option<InteractionRow>>,
    ) -> Result<(), ProjectionError> {
        INTERACTIONS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for Interactions {
    fn name(&self) -> &'static str {
        "interactions"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["interactions"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// The interactions `user_id` was identified in, plus those the activity log ties to them (a
/// failed verification names the account without identifying it). What they typed there is
/// sealed under each interaction's subject, which erasing them destroys.
pub async fn ids_of_user(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    let rows = db
        .query(
            "SELECT id FROM interactions WHERE user_id = $1 \
             UNION SELECT payload->>'interactionId' FROM logs \
             WHERE user_id = $1 AND payload->>'interactionId' IS NOT NULL ORDER BY 1",
            &[&user_id],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(ProjectionError::from))
        .collect()
}

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<InteractionRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(i) FROM interactions i WHERE id = $1",
        &[&id],
    )
    .await
}
