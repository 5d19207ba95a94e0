//! Embedded SQL migrations, applied at start under an advisory lock so that several nodes
//! starting together apply each migration once.

use tokio_postgres::Client;

/// Embeds `migrations/<name>.sql` for each listed migration.
macro_rules! migrations {
    ($(($version:literal, $name:literal)),* $(,)?) => {
        &[$(($version, $name, include_str!(concat!("../migrations/", $name, ".sql")))),*]
    };
}

/// Every migration, in order. The version is the file's number and never changes.
const MIGRATIONS: &[(i32, &str, &str)] = migrations![
    (1, "0001_event_log"),
    (2, "0002_resources_and_roles"),
    (3, "0003_applications"),
    (4, "0004_signing_keys"),
    (5, "0005_logs"),
    (6, "0006_users"),
    (7, "0007_organizations"),
    (8, "0008_oidc"),
    (9, "0009_sign_in_experience"),
    (10, "0010_sentinel"),
    (11, "0011_one_time_tokens"),
    (12, "0012_followers"),
    (13, "0013_consent"),
    (15, "0015_connectors_and_messages"),
    (17, "0017_sign_ins_by_user"),
    (18, "0018_mfa"),
    (19, "0019_hooks"),
    (20, "0020_token_sets"),
    (22, "0022_custom_data_policy"),
    (26, "0026_hash_chain"),
    (34, "0034_user_listing"),
    (35, "0035_logs_payload_json"),
    (36, "0036_erasure_lookups"),
    (38, "0038_id_token_config"),
    (39, "0039_logs_hashed_list_keys"),
];

/// Arbitrary, fixed: the key of the advisory lock that serialises migrators.
const MIGRATION_LOCK: i64 = 0x1d1e_d9e2;

pub async fn apply(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply_locked(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    applied
}

async fn apply_locked(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ( \
               version integer PRIMARY KEY, name text NOT NULL, \
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "migration applied");
        count += 1;
    }
    Ok(count)
}
