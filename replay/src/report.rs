//! `replay report --from --to --out report.html`: an audit report of a period as one HTML file
//! that opens anywhere (charts are inline SVG; no script, no external resource): sign-ins and
//! failed attempts per day, token exchanges per day and grant type, Management API changes per
//! actor, suspensions, erasures and lockouts.
//!
//! Everything but erasures and lockouts comes from one constant-memory pass over the period's
//! events. Erasures are the destroyed data keys (the log keeps no personal data to show);
//! lockouts are the sentinel's, which is operational state outside the log and keeps only
//! current and recent locks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use domain::exchange::{ExchangeEvent, GrantType};
use domain::interaction::{InteractionEvent, InteractionEventRecord};
use idledger::app::Environment;
use idledger::history::Logged;
use idledger::store::StoreError;
use time::{Date, Duration, OffsetDateTime};

use crate::ReplayError;
use crate::chart::{self, Series, escape};
use crate::scan::{self, Consumer, Filter, rfc3339};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start of the period: a date (YYYY-MM-DD, UTC), milliseconds or RFC 3339.
    #[arg(long)]
    from: String,
    /// End of the period, included (a date includes its whole day).
    #[arg(long)]
    to: String,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Rows listed individually at most; counts always cover everything.
const LISTED: usize = 1000;
/// Periods up to this long show every day, zeros included; longer ones only active days.
const DAILY_UP_TO: i64 = 366;

/// Streams whose events are users signing in and using tokens, not administration.
const NOT_ADMINISTRATION: &[&str] = &["exchange", "interaction", "session", "grant"];

#[derive(Default, Clone)]
struct Day {
    sign_ins: u64,
    failures: u64,
    registrations: u64,
    password_resets: u64,
    issued: u64,
    refused: u64,
}

#[derive(Default)]
struct Actor {
    changes: u64,
    types: BTreeMap<String, u64>,
}

struct Suspension {
    at: OffsetDateTime,
    user_id: String,
    suspended: bool,
    actor: String,
}

#[derive(Default)]
struct Tally {
    events: u64,
    days: BTreeMap<Date, Day>,
    /// Issued and refused per grant type.
    grant_types: BTreeMap<&'static str, (u64, u64)>,
    actors: BTreeMap<(&'static str, String), Actor>,
    suspensions: Vec<Suspension>,
    suspended: u64,
    reactivated: u64,
}

fn grant_name(grant: GrantType) -> &'static str {
    match grant {
        GrantType::ClientCredentials => "client_credentials",
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::TokenExchange => "token_exchange",
        GrantType::Unknown => "unsupported",
    }
}

impl Tally {
    fn interaction(&mut self, day: Date, event: &domain::RecordedEvent) -> Result<(), ReplayError> {
        let counts = self.days.entry(day).or_default();
        match event.event_type.as_str() {
            "interaction.verification_failed" => counts.failures += 1,
            "interaction.submitted" => {
                let decoded: InteractionEventRecord =
                    domain::decode(&event.event_type, &event.payload).map_err(StoreError::from)?;
                if let InteractionEventRecord::Submitted { event, .. } = decoded {
                    match event {
                        InteractionEvent::SignIn => counts.sign_ins += 1,
                        InteractionEvent::Register => counts.registrations += 1,
                        InteractionEvent::ForgotPassword => counts.password_resets += 1,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn exchange(&mut self, day: Date, event: &domain::RecordedEvent) -> Result<(), ReplayError> {
        let decoded: ExchangeEvent =
            domain::decode(&event.event_type, &event.payload).map_err(StoreError::from)?;
        let counts = self.days.entry(day).or_default();
        match decoded {
            ExchangeEvent::Issued(issued) => {
                counts.issued += 1;
                self.grant_types
                    .entry(grant_name(issued.grant_type))
                    .or_default()
                    .0 += 1;
            }
            ExchangeEvent::Refused(refused) => {
                counts.refused += 1;
                self.grant_types
                    .entry(grant_name(refused.grant_type))
                    .or_default()
                    .1 += 1;
            }
        }
        Ok(())
    }
}

impl Consumer for Tally {
    fn consume(&mut self, logged: Logged) -> Result<(), ReplayError> {
        let event = logged.event;
        self.events += 1;
        let day = event.metadata.occurred_at.date();
        match event.stream_type.as_str() {
            "interaction" => self.interaction(day, &event)?,
            "exchange" => self.exchange(day, &event)?,
            _ => {}
        }
        let suspended = match event.event_type.as_str() {
            "user.suspended" => Some(true),
            "user.reactivated" => Some(false),
            _ => None,
        };
        if let Some(suspended) = suspended {
            if suspended {
                self.suspended += 1;
            } else {
                self.reactivated += 1;
            }
            if self.suspensions.len() < LISTED {
                self.suspensions.push(Suspension {
                    at: event.metadata.occurred_at,
                    user_id: event.stream_id.clone(),
                    suspended,
                    actor: format!(
                        "{}{}",
                        event.metadata.actor.kind(),
                        event
                            .metadata
                            .actor
                            .id()
                            .map(|id| format!(" {id}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        let actor = &event.metadata.actor;
        if let (kind @ ("app" | "admin"), Some(id)) = (actor.kind(), actor.id())
            && !NOT_ADMINISTRATION.contains(&event.stream_type.as_str())
        {
            let tally = self.actors.entry((kind, id.to_owned())).or_default();
            tally.changes += 1;
            *tally.types.entry(event.event_type).or_default() += 1;
        }
        Ok(())
    }
}

/// What the report shows besides the log's events.
struct Outside {
    erasures: Vec<(String, OffsetDateTime)>,
    erased: i64,
    lockouts: i64,
    application_names: BTreeMap<String, String>,
}

async fn outside(
    environment: &Environment,
    tally: &Tally,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Outside, ReplayError> {
    let db = environment.pool.get().await?;
    let erased: i64 = db
        .query_one(
            // People, not keys: one erasure also destroys the keys of the interactions and the
            // mail address that held the person's data.
            "SELECT count(*) FROM events WHERE event_type = 'user.erased' \
             AND occurred_at >= $1 AND occurred_at < $2",
            &[&start, &end],
        )
        .await?
        .try_get(0)?;
    let listed = i64::try_from(LISTED).unwrap_or(i64::MAX);
    let erasures = db
        .query(
            "SELECT stream_id, occurred_at FROM events WHERE event_type = 'user.erased' \
             AND occurred_at >= $1 AND occurred_at < $2 ORDER BY position LIMIT $3",
            &[&start, &end, &listed],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let lockouts: i64 = db
        .query_one(
            "SELECT count(*) FROM lockouts WHERE locked_until IS NOT NULL \
             AND locked_until > $1 AND first_failure_at < $2",
            &[&domain::unix_ms(start), &domain::unix_ms(end)],
        )
        .await?
        .try_get(0)?;
    let mut application_names = BTreeMap::new();
    for (kind, id) in tally.actors.keys() {
        if *kind == "app"
            && let Some(application) = projections::applications::by_id(&db, id)
                .await
                .map_err(StoreError::from)?
        {
            application_names.insert(id.clone(), application.name);
        }
    }
    Ok(Outside {
        erasures,
        erased,
        lockouts,
        application_names,
    })
}

/// The days to show: every day of a short period, the active days of a long one.
fn days(tally: &Tally, start: OffsetDateTime, end: OffsetDateTime) -> Vec<(Date, Day)> {
    let (first, last) = (start.date(), (end - Duration::nanoseconds(1)).date());
    if (last - first).whole_days() > DAILY_UP_TO {
        return tally.days.iter().map(|(d, c)| (*d, c.clone())).collect();
    }
    let mut shown = Vec::new();
    let mut day = first;
    while day <= last {
        shown.push((day, tally.days.get(&day).cloned().unwrap_or_default()));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    shown
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;\
     padding:0 1rem;color:#1a202c}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}\
     table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.2rem .7rem;\
     border-bottom:1px solid #e2e8f0;text-align:left}td.n{text-align:right;\
     font-variant-numeric:tabular-nums}svg{display:block;margin:.5rem 0}\
     svg .grid{stroke:#e2e8f0}svg .axis{font-size:11px;fill:#4a5568}p.note{color:#4a5568}";

fn total(html: &mut String, id: &str, label: &str, value: impl std::fmt::Display) {
    let _ = write!(
        html,
        "<tr><th scope=\"row\">{label}</th><td class=\"n\" id=\"{id}\">{value}</td></tr>"
    );
}

fn render(
    tally: &Tally,
    outside: &Outside,
    start: OffsetDateTime,
    end: OffsetDateTime,
    generated: OffsetDateTime,
) -> String {
    let shown = days(tally, start, end);
    let sum = |pick: fn(&Day) -> u64| tally.days.values().map(pick).sum::<u64>();
    let admin_changes: u64 = tally.actors.values().map(|a| a.changes).sum();
    let period = format!("{} to {}", rfc3339(start), rfc3339(end));
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>idledger audit report, {period}</title><style>{STYLE}</style></head><body>\
         <h1>Audit report</h1><p>Events that occurred from {} (included) to {} (excluded). \
         Generated {} from the event log.</p>",
        escape(&rfc3339(start)),
        escape(&rfc3339(end)),
        escape(&rfc3339(generated)),
    );

    html.push_str("<h2>Totals</h2><table>");
    total(&mut html, "events", "Events in the period", tally.events);
    total(&mut html, "sign-ins", "Sign-ins", sum(|d| d.sign_ins));
    total(
        &mut html,
        "sign-in-failures",
        "Failed verifications",
        sum(|d| d.failures),
    );
    total(
        &mut html,
        "registrations",
        "Registrations",
        sum(|d| d.registrations),
    );
    total(
        &mut html,
        "password-resets",
        "Password resets",
        sum(|d| d.password_resets),
    );
    total(
        &mut html,
        "token-exchanges",
        "Tokens issued",
        sum(|d| d.issued),
    );
    total(
        &mut html,
        "token-refusals",
        "Token requests refused",
        sum(|d| d.refused),
    );
    total(
        &mut html,
        "admin-changes",
        "Management API changes",
        admin_changes,
    );
    total(&mut html, "suspensions", "Suspensions", tally.suspended);
    total(
        &mut html,
        "reactivations",
        "Reactivations",
        tally.reactivated,
    );
    total(&mut html, "erasures", "Erasures", outside.erased);
    total(&mut html, "lockouts", "Lockouts", outside.lockouts);
    html.push_str("</table>");

    html.push_str("<h2>Sign-ins and failures per day</h2>");
    let rows: Vec<(Date, Vec<u64>)> = shown
        .iter()
        .map(|(d, c)| (*d, vec![c.sign_ins, c.failures, c.registrations]))
        .collect();
    html.push_str(&chart::bars(
        "Sign-ins, failed verifications and registrations per day",
        &[
            Series {
                name: "sign-ins",
                colour: "#2b6cb0",
            },
            Series {
                name: "failures",
                colour: "#c53030",
            },
            Series {
                name: "registrations",
                colour: "#38a169",
            },
        ],
        &rows,
    ));
    html.push_str("<h2>Token exchanges per day</h2>");
    let rows: Vec<(Date, Vec<u64>)> = shown
        .iter()
        .map(|(d, c)| (*d, vec![c.issued, c.refused]))
        .collect();
    html.push_str(&chart::bars(
        "Tokens issued and token requests refused per day",
        &[
            Series {
                name: "issued",
                colour: "#2c7a7b",
            },
            Series {
                name: "refused",
                colour: "#dd6b20",
            },
        ],
        &rows,
    ));
    html.push_str(
        "<table><tr><th>Day</th><th>Sign-ins</th><th>Failures</th><th>Registrations</th>\
         <th>Password resets</th><th>Tokens issued</th><th>Refused</th></tr>",
    );
    for (day, c) in shown.iter().filter(|(_, c)| {
        c.sign_ins + c.failures + c.registrations + c.password_resets + c.issued + c.refused > 0
    }) {
        let _ = write!(
            html,
            "<tr><td>{day}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            c.sign_ins, c.failures, c.registrations, c.password_resets, c.issued, c.refused
        );
    }
    html.push_str("</table><table><tr><th>Grant type</th><th>Issued</th><th>Refused</th></tr>");
    for (grant, (issued, refused)) in &tally.grant_types {
        let _ = write!(
            html,
            "<tr><td>{grant}</td><td class=\"n\">{issued}</td><td class=\"n\">{refused}</td></tr>"
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h2>Management API changes per actor</h2><table><tr><th>Actor</th><th>Kind</th>\
         <th>Changes</th><th>Most frequent</th></tr>",
    );
    let mut actors: Vec<_> = tally.actors.iter().collect();
    actors.sort_by(|a, b| b.1.changes.cmp(&a.1.changes).then(a.0.cmp(b.0)));
    for ((kind, id), actor) in actors {
        let mut types: Vec<_> = actor.types.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let frequent: Vec<String> = types
            .iter()
            .take(3)
            .map(|(kind, count)| format!("{} ({count})", escape(kind)))
            .collect();
        let name = match outside.application_names.get(id) {
            Some(name) => format!("{} <small>{}</small>", escape(name), escape(id)),
            None => escape(id),
        };
        let _ = write!(
            html,
            "<tr><td>{name}</td><td>{kind}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            actor.changes,
            frequent.join(", ")
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h2>Suspensions</h2><table><tr><th>When</th><th>User</th><th>Change</th>\
         <th>By</th></tr>",
    );
    for suspension in &tally.suspensions {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&rfc3339(suspension.at)),
            escape(&suspension.user_id),
            if suspension.suspended {
                "suspended"
            } else {
                "reactivated"
            },
            escape(&suspension.actor)
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h2>Erasures</h2><p class=\"note\">People erased in the period: their data keys are \
         destroyed, so their personal data is unreadable everywhere, the log included.</p>\
         <table><tr><th>When</th><th>Subject</th></tr>",
    );
    for (subject, at) in &outside.erasures {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&rfc3339(*at)),
            escape(subject)
        );
    }
    let _ = write!(
        html,
        "</table><h2>Lockouts</h2><p class=\"note\">{} identifier(s) locked after repeated \
         failed verifications during the period. Lockouts are the sentinel's operational state, \
         not events: only current and recent ones are known, by keyed hash of the \
         identifier.</p></body></html>",
        outside.lockouts
    );
    html
}

pub async fn run(environment: &Environment, args: &Args) -> Result<(), ReplayError> {
    let start = scan::start_of(&args.from)?;
    let end = scan::end_of(&args.to)?;
    if start >= end {
        return Err(ReplayError::Usage(
            "--from must come before --to".to_owned(),
        ));
    }
    let filter = Filter {
        from: Some(args.from.clone()),
        to: Some(args.to.clone()),
        ..Filter::default()
    };
    let (_, tally) = scan::scan(environment, &filter, Tally::default()).await?;
    let outside = outside(environment, &tally, start, end).await?;
    let html = render(&tally, &outside, start, end, OffsetDateTime::now_utc());
    std::fs::write(&args.out, html)?;
    println!(
        "wrote {} ({} events from {} to {})",
        args.out.display(),
        tally.events,
        rfc3339(start),
        rfc3339(end)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_period_shows_every_day_and_escapes_what_it_prints() {
        let day = |d: u8| Date::from_calendar_date(2024, time::Month::May, d).unwrap();
        let mut tally = Tally::default();
        tally.days.insert(
            day(2),
            Day {
                sign_ins: 3,
                failures: 1,
                ..Day::default()
            },
        );
        tally.actors.insert(
            ("app", "<m2m>".to_owned()),
            Actor {
                changes: 2,
                types: BTreeMap::from([("user.suspended".to_owned(), 2)]),
            },
        );
        let start = day(1).midnight().assume_utc();
        let end = day(4).midnight().assume_utc();
        let outside = Outside {
            erasures: Vec::new(),
            erased: 0,
            lockouts: 0,
            application_names: BTreeMap::new(),
        };
        let html = render(&tally, &outside, start, end, end);
        assert_eq!(days(&tally, start, end).len(), 3);
        assert!(html.contains("id=\"sign-ins\">3<"), "{html}");
        assert!(html.contains("id=\"sign-in-failures\">1<"));
        assert!(html.contains("id=\"admin-changes\">2<"));
        assert!(html.contains("&lt;m2m&gt;"));
        assert!(!html.contains("<m2m>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=") && !html.contains("<link"));
    }
}
