//! Audit records of users moved out of or into this instance: App ID's `users/export` and
//! `users/import`, and replay's `export-users` / `import-users`. Each run is one stream named
//! with a fresh id, so an auditor can answer who exported or imported whom, when and from
//! where. The users an import creates carry their own events, with the same actor and request.
//! Only counts, role and organization names and user ids are recorded: no person's data, so
//! these streams have no data subject.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// Which shape the users travelled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransferFormat {
    /// IBM Cloud App ID's profile JSON (`/management/v4/{tenant}/users/export|import`).
    AppId,
    /// idledger's JSON Lines, with password digests and organization memberships.
    Idledger,
}

impl TransferFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFormat::AppId => "appId",
            TransferFormat::Idledger => "idledger",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    pub format: TransferFormat,
    /// How many users the export hands out.
    pub count: u64,
    /// The page asked for (0-based index of its first user), when the export was paged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
}

/// One user an import did not create, and why (a code, never the conflicting value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedUser {
    pub id: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub format: TransferFormat,
    pub created: u64,
    /// Users already here exactly as imported.
    pub skipped: u64,
    pub refused: Vec<RefusedUser>,
}

/// An import turned down as a whole before anything was appended: it named roles,
/// organizations or organization roles this instance does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRefusal {
    pub format: TransferFormat,
    pub users: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_organizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_organization_roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserTransferCommand {
    RecordExport(Exported),
    RecordImport(Imported),
    RecordRefusedImport(ImportRefusal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserTransferEvent {
    #[serde(rename = "user_transfer.exported")]
    Exported(Exported),
    #[serde(rename = "user_transfer.imported")]
    Imported(Imported),
    #[serde(rename = "user_transfer.import_refused")]
    ImportRefused(ImportRefusal),
}

impl cqrs_es::DomainEvent for UserTransferEvent {
    fn event_type(&self) -> String {
        match self {
            UserTransferEvent::Exported(_) => "user_transfer.exported",
            UserTransferEvent::Imported(_) => "user_transfer.imported",
            UserTransferEvent::ImportRefused(_) => "user_transfer.import_refused",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            UserTransferEvent::Exported(_)
            | UserTransferEvent::Imported(_)
            | UserTransferEvent::ImportRefused(_) => "1",
        }
        .to_owned()
    }
}

impl Event for UserTransferEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserTransferError {
    /// A run is recorded once; a second record under its id is a bug or a replayed request.
    #[error("this transfer is already recorded")]
    AlreadyRecorded,
}

#[derive(Debug, Clone, Default)]
pub struct UserTransfer {
    recorded: bool,
}

impl Aggregate for UserTransfer {
    const TYPE: &'static str = "user_transfer";
    type Command = UserTransferCommand;
    type Event = UserTransferEvent;
    type Error = UserTransferError;

    fn decide(
        &self,
        command: UserTransferCommand,
    ) -> Result<Vec<UserTransferEvent>, UserTransferError> {
        if self.recorded {
            return Err(UserTransferError::AlreadyRecorded);
        }
        Ok(vec![match command {
            UserTransferCommand::RecordExport(exported) => UserTransferEvent::Exported(exported),
            UserTransferCommand::RecordImport(imported) => UserTransferEvent::Imported(imported),
            UserTransferCommand::RecordRefusedImport(refusal) => {
                UserTransferEvent::ImportRefused(refusal)
            }
        }])
    }

    fn apply(&mut self, event: &UserTransferEvent) {
        match event {
            UserTransferEvent::Exported(_)
            | UserTransferEvent::Imported(_)
            | UserTransferEvent::ImportRefused(_) => self.recorded = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn exported() -> Exported {
        Exported {
            format: TransferFormat::AppId,
            count: 2,
            start_index: None,
        }
    }

    #[test]
    fn a_run_is_recorded_once() {
        Given::<UserTransfer>::with(())
            .given(vec![])
            .when(UserTransferCommand::RecordExport(exported()))
            .then_expect_events(vec![UserTransferEvent::Exported(exported())]);
        Given::<UserTransfer>::with(())
            .given(vec![UserTransferEvent::Exported(exported())])
            .when(UserTransferCommand::RecordExport(exported()))
            .then_expect_error(UserTransferError::AlreadyRecorded);
    }
}
