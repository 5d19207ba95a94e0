//! Logto's list search (`search`, `search.<field>`, `mode`, `joint`, `isCaseSensitive`) turned
//! into a parameterised SQL condition over a read model's columns.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Like,
    Exact,
    SimilarTo,
    Posix,
}

/// One condition: the given values of one field, or of every searchable field when `field` is
/// `None` (Logto's bare `search=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub field: Option<String>,
    pub mode: Mode,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    pub terms: Vec<Term>,
    /// `joint=and`: every term must match; otherwise any.
    pub all_terms: bool,
    pub case_sensitive: bool,
}

impl Search {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// `(sql, values)`: a condition over `columns` whose placeholders start at `$first`.
    /// `columns` are trusted identifiers (never user input); the user's field names were
    /// checked against them when the search was parsed.
    pub fn condition(&self, columns: &[&str], first: usize) -> (String, Vec<String>) {
        let mut params = Vec::new();
        let mut parts = Vec::new();
        for term in &self.terms {
            let fields: Vec<&str> = match &term.field {
                Some(field) => columns.iter().copied().filter(|c| c == field).collect(),
                None => columns.to_vec(),
            };
            let mut alternatives = Vec::new();
            for column in fields {
                alternatives.push(self.compare(column, term, first, &mut params));
            }
            if !alternatives.is_empty() {
                parts.push(format!("({})", alternatives.join(" OR ")));
            }
        }
        if parts.is_empty() {
            return ("TRUE".to_owned(), params);
        }
        let joint = if self.all_terms { " AND " } else { " OR " };
        (format!("({})", parts.join(joint)), params)
    }

    fn compare(&self, column: &str, term: &Term, first: usize, params: &mut Vec<String>) -> String {
        let mut sql = String::new();
        let placeholder = |value: &str, params: &mut Vec<String>| {
            params.push(value.to_owned());
            format!("${}", first + params.len() - 1)
        };
        // Columns may be non-text (ids are text, but be safe for future ones).
        let text = format!("{column}::text");
        match term.mode {
            Mode::Exact if term.values.len() > 1 => {
                let list: Vec<String> = term
                    .values
                    .iter()
                    .map(|v| {
                        let p = placeholder(v, params);
                        if self.case_sensitive {
                            p
                        } else {
                            format!("lower({p})")
                        }
                    })
                    .collect();
                let subject = if self.case_sensitive {
                    text
                } else {
                    format!("lower({text})")
                };
                let _ = write!(sql, "{subject} IN ({})", list.join(", "));
            }
            mode => {
                let value = term.values.first().map(String::as_str).unwrap_or_default();
                let p = placeholder(value, params);
                let _ = match (mode, self.case_sensitive) {
                    (Mode::Like, true) => write!(sql, "{text} LIKE {p}"),
                    (Mode::Like, false) => write!(sql, "{text} ILIKE {p}"),
                    (Mode::Exact, true) => write!(sql, "{text} = {p}"),
                    (Mode::Exact, false) => write!(sql, "lower({text}) = lower({p})"),
                    (Mode::Posix, true) => write!(sql, "{text} ~ {p}"),
                    (Mode::Posix, false) => write!(sql, "{text} ~* {p}"),
                    // Parsing refuses case-insensitive `similar_to`, as Logto does.
                    (Mode::SimilarTo, _) => write!(sql, "{text} SIMILAR TO {p}"),
                };
            }
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(field: Option<&str>, mode: Mode, values: &[&str]) -> Term {
        Term {
            field: field.map(str::to_owned),
            mode,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn a_bare_search_matches_any_column() {
        let search = Search {
            terms: vec![term(None, Mode::Like, &["%ada%"])],
            ..Search::default()
        };
        let (sql, params) = search.condition(&["id", "name"], 3);
        assert_eq!(sql, "((id::text ILIKE $3 OR name::text ILIKE $4))");
        assert_eq!(params, ["%ada%", "%ada%"]);
    }

    #[test]
    fn exact_with_several_values_is_a_case_folded_list() {
        let search = Search {
            terms: vec![term(Some("name"), Mode::Exact, &["A", "b"])],
            all_terms: true,
            case_sensitive: false,
        };
        let (sql, params) = search.condition(&["id", "name"], 1);
        assert_eq!(sql, "((lower(name::text) IN (lower($1), lower($2))))");
        assert_eq!(params, ["A", "b"]);
    }

    #[test]
    fn terms_join_with_and_or_or() {
        let mut search = Search {
            terms: vec![
                term(Some("id"), Mode::Posix, &["^a"]),
                term(Some("name"), Mode::Exact, &["x"]),
            ],
            all_terms: true,
            case_sensitive: true,
        };
        assert_eq!(
            search.condition(&["id", "name"], 1).0,
            "((id::text ~ $1) AND (name::text = $2))"
        );
        search.all_terms = false;
        assert!(search.condition(&["id", "name"], 1).0.contains(" OR "));
    }

    #[test]
    fn an_empty_search_matches_everything() {
        assert_eq!(Search::default().condition(&["id"], 1).0, "TRUE");
    }
}
