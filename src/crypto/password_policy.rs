//! Logto's password policy checker (`PasswordPolicyChecker` of `@logto/core-kit`): length,
//! character types, and restricted phrases (repetitions, keyboard and alphabet sequences, listed
//! words, the user's own name or identifiers). Used by the Management API's check-password route
//! and by every flow that sets a password.
//!
//! The `pwned` rejection (a Have I Been Pwned range query) is not checked: idledger makes no
//! outbound request on behalf of a password.

use domain::sign_in_experience::PasswordPolicy;
use serde::Serialize;

/// Logto's symbol set; any other character outside ASCII letters and digits is unsupported.
const SYMBOLS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Runs that count as a sequence, in either direction.
const SEQUENCES: &[&str] = &[
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz",
    "2wsx",
    "3edc",
    "4rfv",
    "5tgb",
    "6yhn",
    "7ujm",
    "8ik",
    "9ol",
];

/// Repetitions and sequences shorter than this are fine.
const RUN_THRESHOLD: usize = 3;
/// A password keeping more than this many characters outside restricted phrases passes.
const RESTRICTED_TOLERANCE: usize = 3;

/// One reason a password fails the policy, as Logto reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordIssue {
    /// `password_rejected.*`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<Interpolation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interpolation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// What a password must not be built from; Logto's `UserInfo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserInfo<'a> {
    pub name: Option<&'a str>,
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone_number: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("User information data is required to check user information.")]
    UserInfoRequired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restriction {
    Repetition,
    Sequence,
    Words,
    UserInfo,
}

impl Restriction {
    fn code(self) -> &'static str {
        match self {
            Restriction::Repetition => "password_rejected.restricted.repetition",
            Restriction::Sequence => "password_rejected.restricted.sequence",
            Restriction::Words => "password_rejected.restricted.words",
            Restriction::UserInfo => "password_rejected.restricted.user_info",
        }
    }
}

fn issue(code: &'static str) -> PasswordIssue {
    PasswordIssue {
        code,
        interpolation: None,
    }
}

/// The issues of `password` under `policy`, in Logto's order; empty when it passes. Rejecting
/// user information needs `user`, as in Logto (which throws a `TypeError` without it).
pub fn check(
    policy: &PasswordPolicy,
    password: &str,
    user: Option<&UserInfo<'_>>,
) -> Result<Vec<PasswordIssue>, PasswordPolicyError> {
    let mut issues = basic_issues(policy, password);
    let chars: Vec<char> = password.chars().collect();
    let mut restricted = vec![false; chars.len()];
    let mut found: Vec<Restriction> = Vec::new();
    let rejects = &policy.rejects;
    for start in 0..chars.len() {
        let rest = &chars[start..];
        let mut mark = |length: usize, restriction: Restriction| {
            if length == 0 {
                return;
            }
            let end = (start + length).min(restricted.len());
            restricted[start..end].fill(true);
            if !found.contains(&restriction) {
                found.push(restriction);
            }
        };
        if rejects.repetition_and_sequence {
            mark(repetition_length(rest), Restriction::Repetition);
            mark(sequence_length(rest), Restriction::Sequence);
        }
        if !rejects.words.is_empty() {
            mark(word_length(rest, &rejects.words), Restriction::Words);
        }
        if rejects.user_info {
            let user = user.ok_or(PasswordPolicyError::UserInfoRequired)?;
            mark(user_info_length(rest, user), Restriction::UserInfo);
        }
    }
    let restricted_count = restricted.iter().filter(|r| **r).count();
    if restricted_count > chars.len().saturating_sub(RESTRICTED_TOLERANCE).max(1) {
        issues.extend(found.into_iter().map(|r| issue(r.code())));
    }
    Ok(issues)
}

/// Length (in UTF-16 units, as JavaScript counts) and character types: Logto's `fastCheck`.
fn basic_issues(policy: &PasswordPolicy, password: &str) -> Vec<PasswordIssue> {
    let mut issues = Vec::new();
    let length = password.encode_utf16().count();
    let (min, max) = (policy.length.min, policy.length.max);
    if length < usize::try_from(min).unwrap_or(usize::MAX) {
        issues.push(PasswordIssue {
            code: "password_rejected.too_short",
            interpolation: Some(Interpolation {
                min: Some(min),
                max: None,
            }),
        });
    } else if length > usize::try_from(max).unwrap_or(usize::MAX) {
        issues.push(PasswordIssue {
            code: "password_rejected.too_long",
            interpolation: Some(Interpolation {
                min: None,
                max: Some(max),
            }),
        });
    }
    let mut types = [false; 4];
    for c in password.chars() {
        let slot = match c {
            'a'..='z' => 0,
            'A'..='Z' => 1,
            '0'..='9' => 2,
            c if SYMBOLS.contains(c) => 3,
            _ => {
                issues.push(issue("password_rejected.unsupported_characters"));
                return issues;
            }
        };
        types[slot] = true;
    }
    let mixed = types.iter().filter(|t| **t).count();
    let required = policy.character_types.min;
    if mixed < usize::try_from(required).unwrap_or(usize::MAX) {
        issues.push(PasswordIssue {
            code: "password_rejected.character_types",
            interpolation: Some(Interpolation {
                min: Some(required),
                max: None,
            }),
        });
    }
    issues
}

/// The run of the first character at the start of `rest` (case-sensitive), if long enough.
fn repetition_length(rest: &[char]) -> usize {
    let Some(first) = rest.first() else { return 0 };
    let length = rest.iter().take_while(|c| *c == first).count();
    if length >= RUN_THRESHOLD { length } else { 0 }
}

/// Whether `run` appears in a sequence, forwards or backwards, all lower or all upper case.
fn is_sequential(run: &str) -> bool {
    SEQUENCES.iter().any(|sequence| {
        let reversed: String = sequence.chars().rev().collect();
        [
            sequence.to_string(),
            reversed.clone(),
            sequence.to_uppercase(),
            reversed.to_uppercase(),
        ]
        .iter()
        .any(|candidate| candidate.contains(run))
    })
}

/// The longest sequential run at the start of `rest`, if long enough.
fn sequence_length(rest: &[char]) -> usize {
    let mut run = String::new();
    let mut length = 0;
    for c in rest {
        let mut candidate = run.clone();
        candidate.push(*c);
        if !run.is_empty() && !is_sequential(&candidate) {
            break;
        }
        run = candidate;
        length += 1;
    }
    if length >= RUN_THRESHOLD { length } else { 0 }
}

/// The longest listed word `rest` starts with, ignoring case.
fn word_length(rest: &[char], words: &[String]) -> usize {
    let lowered = rest.iter().collect::<String>().to_lowercase();
    words
        .iter()
        .filter(|word| lowered.starts_with(&word.to_lowercase()))
        .map(|word| word.chars().count())
        .max()
        .unwrap_or(0)
}

/// The longest piece of the user's information `rest` starts with, ignoring case: the name
/// whole, without spaces, or word by word; the username; the email's local part; the phone.
fn user_info_length(rest: &[char], user: &UserInfo<'_>) -> usize {
    let lowered = rest.iter().collect::<String>().to_lowercase();
    let starts = |piece: &str| lowered.starts_with(&piece.to_lowercase());
    let mut pieces: Vec<&str> = Vec::new();
    let mut joined = String::new();
    if let Some(name) = user.name.filter(|n| !n.is_empty()) {
        if starts(name) {
            pieces.push(name);
        } else {
            joined = name.split_whitespace().collect();
            pieces.extend(name.split(' '));
        }
    }
    if !joined.is_empty() {
        pieces.push(&joined);
    }
    pieces.extend(user.username.filter(|u| !u.is_empty()));
    pieces.extend(
        user.email
            .and_then(|e| e.split('@').next())
            .filter(|local| !local.is_empty()),
    );
    let phone = user
        .phone_number
        .filter(|p| !p.is_empty() && lowered.starts_with(*p))
        .map_or(0, |p| p.chars().count());
    pieces
        .into_iter()
        .filter(|piece| starts(piece))
        .map(|piece| piece.chars().count())
        .max()
        .unwrap_or(0)
        .max(phone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sign_in_experience::{CharacterTypesPolicy, LengthPolicy, RejectsPolicy};

    fn codes(issues: &[PasswordIssue]) -> Vec<&'static str> {
        issues.iter().map(|i| i.code).collect()
    }

    /// The policy of Logto's own integration test of check-password.
    fn logto_test_policy() -> PasswordPolicy {
        PasswordPolicy {
            length: LengthPolicy { min: 8, max: 64 },
            character_types: CharacterTypesPolicy { min: 3 },
            rejects: RejectsPolicy::default(),
        }
    }

    const JOHNNY: UserInfo<'static> = UserInfo {
        name: Some("Johnny"),
        username: None,
        email: None,
        phone_number: None,
    };

    #[test]
    fn logtos_integration_test_cases_give_the_same_issues_bar_pwned() {
        let policy = logto_test_policy();
        assert_eq!(
            codes(&check(&policy, "123", Some(&JOHNNY)).unwrap()),
            [
                "password_rejected.too_short",
                "password_rejected.character_types",
                "password_rejected.restricted.sequence"
            ]
        );
        assert_eq!(
            codes(&check(&policy, "johnny13", Some(&JOHNNY)).unwrap()),
            [
                "password_rejected.character_types",
                "password_rejected.restricted.user_info"
            ]
        );
        assert_eq!(
            codes(&check(&policy, "123456aA", Some(&JOHNNY)).unwrap()),
            ["password_rejected.restricted.sequence"]
        );
        assert!(
            check(&policy, "Vq7!rT2#pLm9", Some(&JOHNNY))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn length_and_types_carry_their_bounds() {
        let policy = PasswordPolicy {
            rejects: RejectsPolicy {
                user_info: false,
                ..RejectsPolicy::default()
            },
            length: LengthPolicy { min: 8, max: 10 },
            character_types: CharacterTypesPolicy { min: 2 },
        };
        let too_long = check(&policy, "abcdefghijkXYZ", None).unwrap();
        assert_eq!(
            serde_json::to_value(&too_long[0]).unwrap(),
            serde_json::json!({"code": "password_rejected.too_long", "interpolation": {"max": 10}})
        );
        let short = check(&policy, "zq", None).unwrap();
        assert_eq!(
            serde_json::to_value(&short).unwrap(),
            serde_json::json!([
                {"code": "password_rejected.too_short", "interpolation": {"min": 8}},
                {"code": "password_rejected.character_types", "interpolation": {"min": 2}}
            ])
        );
        assert_eq!(
            codes(&check(&policy, "pässwörd123", None).unwrap()),
            [
                "password_rejected.too_long",
                "password_rejected.unsupported_characters"
            ]
        );
    }

    #[test]
    fn restricted_phrases_count_only_when_they_dominate() {
        let policy = PasswordPolicy {
            rejects: RejectsPolicy {
                user_info: false,
                words: vec!["Secret".into()],
                ..RejectsPolicy::default()
            },
            ..PasswordPolicy::default()
        };
        assert_eq!(
            codes(&check(&policy, "aaaaaaaa", None).unwrap()),
            ["password_rejected.restricted.repetition"]
        );
        assert_eq!(
            codes(&check(&policy, "qwertyuiop", None).unwrap()),
            ["password_rejected.restricted.sequence"]
        );
        assert_eq!(
            codes(&check(&policy, "SECRET123", None).unwrap()),
            [
                "password_rejected.restricted.words",
                "password_rejected.restricted.sequence"
            ]
        );
        // Four free characters out of ten: more than the tolerance, so it passes.
        assert!(check(&policy, "secretXk9!", None).unwrap().is_empty());
        // Mixed case is not a sequence; repetition is case-sensitive.
        assert!(check(&policy, "aBcDeFgH", None).unwrap().is_empty());
    }

    #[test]
    fn user_info_needs_the_user_and_matches_every_identifier() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            check(&policy, "anything", None),
            Err(PasswordPolicyError::UserInfoRequired)
        );
        let user = UserInfo {
            name: Some("Jane Q Doe"),
            username: Some("jdoe"),
            email: Some("jane.doe@example.com"),
            phone_number: Some("15551234567"),
        };
        for password in ["janeqdoe7", "JDOE1", "jane.doe!", "15551234567x"] {
            assert!(
                codes(&check(&policy, password, Some(&user)).unwrap())
                    .contains(&"password_rejected.restricted.user_info"),
                "{password}"
            );
        }
    }
}
