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
        self.indexed_condition(columns, &Indexes::NONE, first)
    }

    /// As `condition`, shaped for the indexes a read model has over `columns` (see
    /// `Indexes`). The SQL text still depends only on the search's structure, never on its
    /// values.
    pub fn indexed_condition(
        &self,
        columns: &[&str],
        indexes: &Indexes<'_>,
        first: usize,
    ) -> (String, Vec<String>) {
        let mut params = Vec::new();
        let mut parts = Vec::new();
        for term in &self.terms {
            let fields: Vec<&str> = match &term.field {
                Some(field) => columns.iter().copied().filter(|c| c == field).collect(),
                None => columns.to_vec(),
            };
            let mut alternatives = Vec::new();
            for column in fields {
                alternatives.push(self.compare(column, term, indexes, first, &mut params));
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

    fn compare(
        &self,
        column: &str,
        term: &Term,
        indexes: &Indexes<'_>,
        first: usize,
        params: &mut Vec<String>,
    ) -> String {
        let mut sql = String::new();
        let placeholder = |value: &str, params: &mut Vec<String>| {
            params.push(value.to_owned());
            format!("${}", first + params.len() - 1)
        };
        if indexes.trigram
            && let Some(shaped) = self.trigram_shaped(column, term, indexes, params, &placeholder)
        {
            return shaped;
        }
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

    /// The trigram-served form of a `like` term, and of a case-insensitive `exact` one on a
    /// column without a `lower()` index; `None` for what the plain form already serves.
    fn trigram_shaped(
        &self,
        column: &str,
        term: &Term,
        indexes: &Indexes<'_>,
        params: &mut Vec<String>,
        placeholder: &dyn Fn(&str, &mut Vec<String>) -> String,
    ) -> Option<String> {
        let operator = if self.case_sensitive { "LIKE" } else { "ILIKE" };
        let patterns: Vec<String> = match term.mode {
            Mode::Like => term.values.iter().take(1).cloned().collect(),
            // `lower(a) = lower(b)` is what the B-tree on `lower(column)` serves as is.
            Mode::Exact if !self.case_sensitive && !indexes.lowered.contains(&column) => {
                // `a ILIKE b`, with b's wildcards escaped, is `lower(a) = lower(b)`:
                // PostgreSQL's ILIKE lowers both sides and matches byte for byte.
                term.values.iter().map(|v| escape_like(v)).collect()
            }
            Mode::Exact | Mode::SimilarTo | Mode::Posix => return None,
        };
        let alternatives: Vec<String> = patterns
            .iter()
            .map(|pattern| {
                // A GIN trigram scan loads every trigram of a condition for each row its
                // rarest trigram admits, so a pattern mixing a selective word with words every
                // row has (`%seed_123457%`, `%ada@example.com%`) reads whole posting trees.
                // As separate conditions, the first admits few rows and the others are only
                // looked up for those; the pattern itself comes last and decides. Longer
                // words come first: more trigrams that must all appear.
                let mut keys: Vec<String> = literal_words(pattern)
                    .into_iter()
                    .take(IMPLIED_WORDS)
                    .map(|word| format!("%{word}%"))
                    .collect();
                // The SQL text must not depend on the value: missing words repeat the pattern.
                keys.resize(IMPLIED_WORDS, pattern.clone());
                keys.push(pattern.clone());
                let conditions: Vec<String> = keys
                    .iter()
                    .map(|key| format!("{column} {operator} {}", placeholder(key, params)))
                    .collect();
                format!("({})", conditions.join(" AND "))
            })
            .collect();
        Some(alternatives.join(" OR "))
    }
}

/// What indexes a read model has over its searchable columns.
#[derive(Debug, Clone, Copy)]
pub struct Indexes<'a> {
    /// Every searchable column has a GIN `gin_trgm_ops` index.
    pub trigram: bool,
    /// Columns with a B-tree index on `lower(column)`.
    pub lowered: &'a [&'a str],
}

impl Indexes<'_> {
    /// No index: the plain comparisons, cheapest on a sequential scan.
    pub const NONE: Indexes<'static> = Indexes {
        trigram: false,
        lowered: &[],
    };
}

/// How many words of a pattern become conditions of their own before the pattern itself.
const IMPLIED_WORDS: usize = 2;

/// `value` as a `LIKE` pattern matching exactly itself.
fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 2);
    for character in value.chars() {
        if matches!(character, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// The runs of ASCII letters and digits of at least three characters (a trigram) that any
/// text matching the `LIKE` pattern contains, longest first. Each is alphanumeric, so
/// `%word%` needs no escaping; an escaped character ends a run.
fn literal_words(pattern: &str) -> Vec<&str> {
    let mut words: Vec<&str> = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (index, character) in pattern.char_indices() {
        let literal_alphanumeric = !escaped && character.is_ascii_alphanumeric();
        escaped = !escaped && character == '\\';
        match (literal_alphanumeric, start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                words.push(&pattern[from..index]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        words.push(&pattern[from..]);
    }
    words.retain(|word| word.len() >= 3);
    // Stable: among equally long words, the first.
    words.sort_by_key(|word| std::cmp::Reverse(word.len()));
    let mut seen = std::collections::HashSet::new();
    words.retain(|word| seen.insert(*word));
    words
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
    fn literal_words_are_the_long_alphanumeric_runs_longest_first() {
        assert_eq!(literal_words("%seed_123457%"), ["123457", "seed"]);
        assert_eq!(literal_words("ada.lovelace@x.io"), ["lovelace", "ada"]);
        // An escaped character is literal but ends a run; two-letter runs hold no trigram.
        assert_eq!(literal_words("ab\\cdef%gh"), ["def"]);
        assert_eq!(literal_words("%aaa%aaa%"), ["aaa"]);
        assert!(literal_words("%_%").is_empty());
    }

    #[test]
    fn trigram_indexes_get_each_word_as_a_condition_before_the_pattern() {
        let indexes = Indexes {
            trigram: true,
            lowered: &["email"],
        };
        let like = Search {
            terms: vec![term(None, Mode::Like, &["%seed_123457%"])],
            ..Search::default()
        };
        let (sql, params) = like.indexed_condition(&["name"], &indexes, 1);
        assert_eq!(
            sql,
            "(((name ILIKE $1 AND name ILIKE $2 AND name ILIKE $3)))"
        );
        assert_eq!(params, ["%123457%", "%seed%", "%seed_123457%"]);
        // Without words, the pattern fills their places: the SQL is the same.
        let short = Search {
            terms: vec![term(None, Mode::Like, &["%a_%"])],
            ..Search::default()
        };
        let (short_sql, short_params) = short.indexed_condition(&["name"], &indexes, 1);
        assert_eq!(short_sql, sql);
        assert_eq!(short_params, ["%a_%", "%a_%", "%a_%"]);
    }

    #[test]
    fn case_insensitive_exact_uses_a_lower_index_or_an_escaped_ilike() {
        let indexes = Indexes {
            trigram: true,
            lowered: &["email"],
        };
        let exact = Search {
            terms: vec![term(None, Mode::Exact, &["Seed_1%"])],
            ..Search::default()
        };
        let (sql, params) = exact.indexed_condition(&["email", "name"], &indexes, 1);
        assert_eq!(
            sql,
            "((lower(email::text) = lower($1) OR \
             (name ILIKE $2 AND name ILIKE $3 AND name ILIKE $4)))"
        );
        assert_eq!(params, ["Seed_1%", "%Seed%", "Seed\\_1\\%", "Seed\\_1\\%"]);
        // Case-sensitive exact is a plain equality, which the unique indexes serve.
        let sensitive = Search {
            case_sensitive: true,
            ..exact
        };
        assert_eq!(
            sensitive.indexed_condition(&["name"], &indexes, 1).0,
            "((name::text = $1))"
        );
    }

    #[test]
    fn an_empty_search_matches_everything() {
        assert_eq!(Search::default().condition(&["id"], 1).0, "TRUE");
    }
}
