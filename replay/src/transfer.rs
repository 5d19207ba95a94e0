//! `replay export-users` and `replay import-users`: a tenant's users moved between idledger
//! instances with one command pair, as JSON Lines. Unlike App ID's export, each line also
//! carries the password digest with its algorithm (so the other instance verifies the same
//! passwords), the second factors (the TOTP secret itself, and the unused backup codes' keyed
//! hashes, which only verify where the backup code key is the same: elsewhere they stay behind,
//! said in the summary), the username, phone, OIDC profile, suspension and organization
//! memberships. The file therefore holds credentials: keep it as you would a database dump.
//!
//! The first line is a header (`{"format":"idledger.users","version":1,...}`), then one user
//! per line. Export reads one consistent snapshot in pages, in constant memory; import decides
//! everything before appending (`idledger::transfer`): roles, organizations and organization
//! roles are matched by name (organizations by id first) and must all exist in the target, or
//! nothing is imported; users already there as exported are skipped, so a re-run changes
//! nothing. Both runs are recorded as the operator given with `--operator`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use domain::user::{Password, PasswordAlgorithm};
use domain::user_transfer::{Exported, TransferFormat};
use idledger::app::Environment;
use idledger::store::EventStore;
use idledger::transfer::{self, Identity, Membership, Record, SecondFactor, TransferError};
use projections::transfer::{self as read, Cursor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio_postgres::IsolationLevel;

use indicatif::{ProgressBar, ProgressStyle};

use crate::ReplayError;

/// Users per query of an export.
const PAGE: i64 = 1_000;
const FORMAT: &str = "idledger.users";
const VERSION: u32 = 1;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Who runs the export, as the log records it (actor `admin`, id `replay:<operator>`).
    #[arg(long, env = "USER", default_value = "unknown")]
    operator: String,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The export to read; stdin when absent or `-`.
    file: Option<PathBuf>,
    /// Print what the import would do, and append nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who runs the import, as the log records it (actor `admin`, id `replay:<operator>`).
    #[arg(long, env = "USER", default_value = "unknown")]
    operator: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    format: String,
    version: u32,
    exported_at: String,
    users: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityLine {
    user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordLine {
    digest: String,
    algorithm: PasswordAlgorithm,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrganizationLine {
    id: String,
    name: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
enum FactorLine {
    Totp {
        id: String,
        /// Base32.
        secret: String,
    },
    BackupCode {
        id: String,
        /// Keyed hashes of the unused codes.
        unused_code_hashes: Vec<String>,
        /// Which key hashed them (not the key).
        key_id: String,
    },
}

impl From<SecondFactor> for FactorLine {
    fn from(factor: SecondFactor) -> FactorLine {
        match factor {
            SecondFactor::Totp { id, secret } => FactorLine::Totp { id, secret },
            SecondFactor::BackupCodes {
                id,
                unused_hashes,
                key_id,
            } => FactorLine::BackupCode {
                id,
                unused_code_hashes: unused_hashes,
                key_id,
            },
        }
    }
}

impl From<FactorLine> for SecondFactor {
    fn from(line: FactorLine) -> SecondFactor {
        match line {
            FactorLine::Totp { id, secret } => SecondFactor::Totp { id, secret },
            FactorLine::BackupCode {
                id,
                unused_code_hashes,
                key_id,
            } => SecondFactor::BackupCodes {
                id,
                unused_hashes: unused_code_hashes,
                key_id,
            },
        }
    }
}

/// One user.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserLine {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    primary_email: Option<String>,
    #[serde(default)]
    primary_phone: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    custom_data: Map<String, Value>,
    #[serde(default)]
    profile: Map<String, Value>,
    /// Provider → identity.
    #[serde(default)]
    identities: BTreeMap<String, IdentityLine>,
    #[serde(default)]
    password: Option<PasswordLine>,
    /// Second factors, TOTP first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mfa: Vec<FactorLine>,
    #[serde(default)]
    is_suspended: bool,
    /// Role names.
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    organizations: Vec<OrganizationLine>,
}

impl From<Record> for UserLine {
    fn from(record: Record) -> UserLine {
        UserLine {
            id: record.id,
            username: record.username,
            primary_email: record.primary_email,
            primary_phone: record.primary_phone,
            name: record.name,
            avatar: record.avatar,
            custom_data: record.custom_data,
            profile: record.profile,
            identities: record
                .identities
                .into_iter()
                .map(|(provider, identity)| {
                    (
                        provider,
                        IdentityLine {
                            user_id: identity.user_id,
                            details: identity.details,
                        },
                    )
                })
                .collect(),
            password: record.password.map(|p| PasswordLine {
                digest: p.password_digest,
                algorithm: p.password_algorithm,
            }),
            mfa: record.mfa.into_iter().map(FactorLine::from).collect(),
            is_suspended: record.suspended,
            roles: record.roles.into_iter().collect(),
            organizations: record
                .organizations
                .into_iter()
                .map(|(id, m)| OrganizationLine {
                    id,
                    name: m.name,
                    roles: m.roles.into_iter().collect(),
                })
                .collect(),
        }
    }
}

impl From<UserLine> for Record {
    fn from(line: UserLine) -> Record {
        Record {
            id: line.id,
            username: line.username,
            primary_email: line.primary_email,
            primary_phone: line.primary_phone,
            name: line.name,
            avatar: line.avatar,
            custom_data: line.custom_data,
            profile: line.profile,
            identities: line
                .identities
                .into_iter()
                .map(|(provider, identity)| {
                    (
                        provider,
                        Identity {
                            user_id: identity.user_id,
                            details: identity.details,
                        },
                    )
                })
                .collect(),
            password: line.password.map(|p| Password {
                password_digest: p.digest,
                password_algorithm: p.algorithm,
            }),
            mfa: line.mfa.into_iter().map(SecondFactor::from).collect(),
            suspended: line.is_suspended,
            roles: line.roles.into_iter().collect(),
            organizations: line
                .organizations
                .into_iter()
                .map(|o| {
                    (
                        o.id,
                        Membership {
                            name: o.name,
                            roles: o.roles.into_iter().collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// A progress bar counting users on a terminal; silent otherwise.
fn bar(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} users ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

fn unreadable(error: std::io::Error) -> ReplayError {
    ReplayError::Usage(format!("cannot read the export: {error}"))
}

fn json_error(error: serde_json::Error) -> ReplayError {
    ReplayError::Output(error.into())
}

pub async fn export(environment: &Environment, args: &ExportArgs) -> Result<(), ReplayError> {
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(File::create(path)?),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut client = environment.pool.get().await?;
    // One snapshot: the header's count and the lines agree whatever happens meanwhile.
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let total = read::count(&snapshot)
        .await
        .map_err(idledger::store::StoreError::from)?;
    let store = EventStore::new(environment.pool.clone(), environment.keyring.clone());
    transfer::record_export(
        &store,
        Exported {
            format: TransferFormat::Idledger,
            count: u64::try_from(total).unwrap_or(u64::MAX),
            start_index: None,
        },
        &transfer::operator_metadata(&args.operator),
    )
    .await?;
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: crate::scan::rfc3339(OffsetDateTime::now_utc()),
        users: total,
    };
    serde_json::to_writer(&mut out, &header).map_err(json_error)?;
    out.write_all(b"\n")?;
    let bar = bar(u64::try_from(total).unwrap_or(0), "exporting");
    let mut cursor = Cursor::Start;
    loop {
        let page = read::page(&snapshot, &cursor, PAGE)
            .await
            .map_err(idledger::store::StoreError::from)?;
        let Some(last) = page.last() else {
            break;
        };
        cursor = Cursor::After {
            created_at: last.user.created_at,
            id: last.user.id.clone(),
        };
        let count = page.len();
        for user in page {
            let mfa = transfer::second_factors(&store, &user.mfa).await?;
            let record = Record {
                mfa,
                ..Record::from_travelling(user)
            };
            serde_json::to_writer(&mut out, &UserLine::from(record)).map_err(json_error)?;
            out.write_all(b"\n")?;
        }
        bar.inc(u64::try_from(count).unwrap_or(0));
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("exported {total} user(s)");
    Ok(())
}

/// The users of an export, its header checked.
fn read_records(reader: impl BufRead) -> Result<Vec<Record>, ReplayError> {
    let mut lines = reader.lines().enumerate();
    let header: Header = match lines.next() {
        Some((_, line)) => serde_json::from_str(&line.map_err(unreadable)?)
            .map_err(|e| ReplayError::Usage(format!("line 1 is not an export header: {e}")))?,
        None => return Err(ReplayError::Usage("the export is empty".to_owned())),
    };
    if header.format != FORMAT || header.version != VERSION {
        return Err(ReplayError::Usage(format!(
            "this is a {} version {} file; expected {FORMAT} version {VERSION}",
            header.format, header.version
        )));
    }
    let mut records = Vec::new();
    for (index, line) in lines {
        let line = line.map_err(unreadable)?;
        if line.trim().is_empty() {
            continue;
        }
        let user: UserLine = serde_json::from_str(&line)
            .map_err(|e| ReplayError::Usage(format!("line {}: {e}", index + 1)))?;
        records.push(Record::from(user));
    }
    if i64::try_from(records.len()).ok() != Some(header.users) {
        return Err(ReplayError::Usage(format!(
            "the header announces {} user(s) but the file holds {}: it is truncated or altered",
            header.users,
            records.len()
        )));
    }
    Ok(records)
}

pub async fn import(environment: &Environment, args: &ImportArgs) -> Result<(), ReplayError> {
    let records = match args.file.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(path) => read_records(BufReader::new(File::open(path).map_err(unreadable)?))?,
        None => read_records(std::io::stdin().lock())?,
    };
    let users = records.len();
    let store = EventStore::new(environment.pool.clone(), environment.keyring.clone());
    let metadata = transfer::operator_metadata(&args.operator);
    let planned = {
        let db = environment.pool.get().await?;
        transfer::plan(&db, &environment.keyring, records, TransferFormat::Idledger).await
    };
    let plan = match planned {
        Err(TransferError::Missing(missing)) => {
            if !args.dry_run {
                transfer::record_refusal(
                    &store,
                    TransferFormat::Idledger,
                    users,
                    &missing,
                    &metadata,
                )
                .await?;
            }
            return Err(TransferError::Missing(missing).into());
        }
        other => other?,
    };
    if args.dry_run {
        println!(
            "would create {}, skip {}, refuse {} of {users} user(s)",
            plan.to_create(),
            plan.skipped.len(),
            plan.refused.len()
        );
        for refused in &plan.refused {
            println!(
                "refused {}: {} ({})",
                refused.id, refused.code, refused.reason
            );
        }
        if !plan.backup_codes_left.is_empty() {
            println!(
                "would leave backup codes behind for: {}",
                plan.backup_codes_left.join(", ")
            );
        }
        return Ok(());
    }
    let bar = bar(u64::try_from(plan.to_create()).unwrap_or(0), "importing");
    let summary = transfer::apply(&store, plan, &metadata, |done, _| {
        bar.set_position(u64::try_from(done).unwrap_or(0));
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    println!(
        "created {}, skipped {}, refused {} of {users} user(s) (transfer {})",
        summary.created.len(),
        summary.skipped.len(),
        summary.refused.len(),
        summary.transfer_id
    );
    for refused in &summary.refused {
        println!(
            "refused {}: {} ({})",
            refused.id, refused.code, refused.reason
        );
    }
    if !summary.backup_codes_left.is_empty() {
        println!(
            "backup codes left behind for {} user(s) (hashed with another key; they sign in \
             with their TOTP and generate new codes): {}",
            summary.backup_codes_left.len(),
            summary.backup_codes_left.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_and_unknown_fields_are_refused() {
        let line = r#"{"id":"u1","username":"ada","password":{"digest":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g","algorithm":"Argon2id"},"roles":["editor"],"organizations":[{"id":"o1","name":"Acme","roles":["member"]}],"identities":{"google":{"userId":"g-1","details":{"email":"ada@example.com"}}}}"#;
        let parsed: UserLine = serde_json::from_str(line).unwrap();
        let record = Record::from(parsed);
        assert_eq!(record.identities["google"].user_id, "g-1");
        assert_eq!(record.organizations["o1"].name, "Acme");
        let back = serde_json::to_value(UserLine::from(record.clone())).unwrap();
        assert_eq!(back["password"]["algorithm"], "Argon2id");
        let again: UserLine = serde_json::from_value(back).unwrap();
        assert_eq!(Record::from(again), record);
        assert!(serde_json::from_str::<UserLine>(r#"{"id":"u1","rolez":[]}"#).is_err());
    }

    #[test]
    fn a_truncated_export_is_refused() {
        let file = "{\"format\":\"idledger.users\",\"version\":1,\"exportedAt\":\"x\",\"users\":2}\n\
                    {\"id\":\"u1\"}\n";
        let error = read_records(file.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("announces 2"), "{error}");
    }
}
