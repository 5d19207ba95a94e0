//! The sign-in experience in force: one row holding the latest recorded object.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::sign_in_experience::{self, SignInExperience, SignInExperienceEvent};
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInExperienceRow {
    pub id: String,
    /// The whole object as the last event recorded it.
    pub config: SignInExperience,
    pub updated_at: i64,
}

static ROWS: Rows<SignInExperienceRow> = Rows::new("sign_in_experience", "id");

pub struct SignInExperiences;

#[async_trait]
impl StreamFold for SignInExperiences {
    type Event = SignInExperienceEvent;
    type State = Option<SignInExperienceRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "sign_in_experience")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        ROWS.load_entities(db, streams).await
    }

    fn fold(row: &mut Self::State, event: &RecordedEvent, decoded: SignInExperienceEvent) {
        match decoded {
            SignInExperienceEvent::Updated(experience) => {
                *row = Some(SignInExperienceRow {
                    id: event.stream_id.clone(),
                    config: *experience,
                    updated_at: event.occurred_at_ms(),
                });
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        ROWS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for SignInExperiences {
    fn name(&self) -> &'static str {
        "sign_in_experience"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sign_in_experience"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// The sign-in experience in force; Logto's seed until the first update is recorded.
pub async fn current(db: &impl GenericClient) -> Result<SignInExperience, ProjectionError> {
    Ok(document(
        db,
        "SELECT config FROM sign_in_experience WHERE id = $1",
        &[&sign_in_experience::STREAM_ID],
    )
    .await?
    .unwrap_or_default())
}

/// Usernames that differ only by case, grouped by their lower-case form: they would collide
/// under a case-insensitive username policy. Reads the `users` read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseConflicts {
    pub total_conflicts: i64,
    pub samples: Vec<CaseConflict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseConflict {
    pub username_lower: String,
    pub user_ids: Vec<String>,
}

pub async fn username_case_conflicts(
    db: &impl GenericClient,
    limit: i64,
) -> Result<CaseConflicts, ProjectionError> {
    let statement = db
        .prepare_cached(
            "SELECT lower(username), array_agg(id ORDER BY id), count(*) OVER () \
             FROM users WHERE username IS NOT NULL \
             GROUP BY lower(username) HAVING count(*) > 1 \
             ORDER BY lower(username) LIMIT $1",
        )
        .await?;
    let rows = db.query(&statement, &[&limit]).await?;
    let total_conflicts = match rows.first() {
        Some(row) => row.try_get(2)?,
        None => 0,
    };
    let samples = rows
        .iter()
        .map(|row| {
            Ok(CaseConflict {
                username_lower: row.try_get(0)?,
                user_ids: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(CaseConflicts {
        total_conflicts,
        samples,
    })
}
