//! `replay stats`: how many events of each type the log holds per day (UTC), for the events a
//! filter selects, read in constant memory (only the counts are kept).

use std::collections::BTreeMap;

use idledger::app::Environment;
use idledger::history::Logged;
use time::Date;

use crate::ReplayError;
use crate::scan::{self, Consumer, Filter};

#[derive(Default)]
struct Counts(BTreeMap<(Date, String), u64>);

impl Consumer for Counts {
    fn consume(&mut self, logged: Logged) -> Result<(), ReplayError> {
        let day = logged.event.metadata.occurred_at.date();
        *self.0.entry((day, logged.event.event_type)).or_default() += 1;
        Ok(())
    }
}

/// One line per day and type (`day  type  count`), then the total.
fn render(counts: &Counts, total: u64) -> String {
    let width = counts
        .0
        .keys()
        .map(|(_, kind)| kind.len())
        .max()
        .unwrap_or(0)
        .max("type".len());
    let mut text = format!("{:<10}  {:<width$}  {:>10}\n", "day", "type", "events");
    for ((day, kind), count) in &counts.0 {
        let day = day.to_string();
        text.push_str(&format!("{day:<10}  {kind:<width$}  {count:>10}\n"));
    }
    text.push_str(&format!("{:<10}  {:<width$}  {total:>10}\n", "total", ""));
    text
}

pub async fn run(environment: &Environment, filter: &Filter) -> Result<(), ReplayError> {
    let (total, counts) = scan::scan(environment, filter, Counts::default()).await?;
    print!("{}", render(&counts, total));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sorted_by_day_then_type_and_end_with_the_total() {
        let mut counts = Counts::default();
        let day = |d: u8| Date::from_calendar_date(2024, time::Month::May, d).unwrap();
        counts.0.insert((day(2), "user.created".into()), 3);
        counts.0.insert((day(1), "user.suspended".into()), 1);
        assert_eq!(
            render(&counts, 4),
            "day         type                events\n\
             2024-05-01  user.suspended           1\n\
             2024-05-02  user.created             3\n\
             total                                4\n"
        );
    }
}
