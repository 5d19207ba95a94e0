//! The languages of the hosted pages (English and Japanese), how a request picks one, and every
//! phrase the pages show, with the messages of the Logto error codes they can meet.

use domain::interaction::IdentifierType;
use domain::sign_in_experience::LanguageInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    fn of(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    pub fn phrases(self) -> &'static Phrases {
        match self {
            Lang::En => &EN,
            Lang::Ja => &JA,
        }
    }
}

/// The first supported language of a space-separated `ui_locales` list.
fn from_ui_locales(list: &str) -> Option<Lang> {
    list.split_whitespace().find_map(Lang::of)
}

/// The most preferred supported language of an `Accept-Language` header.
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut ranges: Vec<(f32, Lang)> = header
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let lang = Lang::of(parts.next()?)?;
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (quality > 0.0).then_some((quality, lang))
        })
        .collect();
    // Stable: equal weights keep the header's order.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges.first().map(|(_, lang)| *lang)
}

/// Logto's order: the `ui_locales` of this page's URL, then the authorization request's, then
/// the browser's languages (when the sign-in experience detects them), then its fallback.
pub fn negotiate(
    query: Option<&str>,
    requested: Option<&str>,
    accept_language: Option<&str>,
    info: &LanguageInfo,
) -> Lang {
    query
        .and_then(from_ui_locales)
        .or_else(|| requested.and_then(from_ui_locales))
        .or_else(|| {
            accept_language
                .filter(|_| info.auto_detect)
                .and_then(from_accept_language)
        })
        .or_else(|| Lang::of(&info.fallback_language))
        .unwrap_or(Lang::En)
}

pub struct Phrases {
    pub sign_in_title: &'static str,
    pub register_title: &'static str,
    pub error_title: &'static str,
    pub username: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
    /// Joins the labels of several accepted identifiers.
    pub or: &'static str,
    pub password: &'static str,
    pub confirm_password: &'static str,
    pub sign_in_button: &'static str,
    pub register_button: &'static str,
    pub no_account: &'static str,
    pub create_account: &'static str,
    pub have_account: &'static str,
    pub sign_in_link: &'static str,
    pub logo_alt: &'static str,
    pub passwords_do_not_match: &'static str,
    pub unknown_error: &'static str,
    pub start_again: &'static str,
}

const EN: Phrases = Phrases {
    sign_in_title: "Sign in",
    register_title: "Create your account",
    error_title: "Something went wrong",
    username: "Username",
    email: "Email",
    phone: "Phone number",
    or: " or ",
    password: "Password",
    confirm_password: "Confirm password",
    sign_in_button: "Sign in",
    register_button: "Create account",
    no_account: "No account?",
    create_account: "Create one",
    have_account: "Already have an account?",
    sign_in_link: "Sign in",
    logo_alt: "Logo",
    passwords_do_not_match: "The passwords do not match. Please try again.",
    unknown_error: "Something went wrong. Please try again.",
    start_again: "Go back to the application and start signing in again.",
};

const JA: Phrases = Phrases {
    sign_in_title: "サインイン",
    register_title: "アカウントを作成",
    error_title: "エラーが発生しました",
    username: "ユーザー名",
    email: "メールアドレス",
    phone: "電話番号",
    or: "または",
    password: "パスワード",
    confirm_password: "パスワード（確認）",
    sign_in_button: "サインイン",
    register_button: "アカウントを作成",
    no_account: "アカウントをお持ちでない場合",
    create_account: "新規作成",
    have_account: "すでにアカウントをお持ちの場合",
    sign_in_link: "サインイン",
    logo_alt: "ロゴ",
    passwords_do_not_match: "パスワードが一致しません。もう一度お試しください。",
    unknown_error: "問題が発生しました。もう一度お試しください。",
    start_again: "アプリケーションに戻り、もう一度サインインを始めてください。",
};

impl Phrases {
    /// The label of the identifier field: every accepted kind, in the configured order.
    pub fn identifier_label(&self, kinds: &[IdentifierType]) -> String {
        let labels: Vec<&str> = kinds
            .iter()
            .map(|kind| match kind {
                IdentifierType::Username => self.username,
                IdentifierType::Email => self.email,
                IdentifierType::Phone => self.phone,
            })
            .collect();
        labels.join(self.or)
    }
}

/// The message for a Logto error code the pages can meet; `None` for any other code.
pub fn error_message(lang: Lang, code: &str) -> Option<&'static str> {
    let (en, ja) = match code {
        "session.invalid_credentials" => (
            "Incorrect account or password. Please check your input.",
            "アカウントまたはパスワードが正しくありません。入力内容をご確認ください。",
        ),
        "user.suspended" => (
            "This account is suspended.",
            "このアカウントは停止されています。",
        ),
        "session.verification_blocked_too_many_attempts" => (
            "Too many attempts in a short time. Please try again later.",
            "短時間に試行が多すぎます。しばらくしてから再度お試しください。",
        ),
        "request.rate_limited" => (
            "Too many sign-in attempts from your network. Please try again later.",
            "お使いのネットワークからのサインイン試行が多すぎます。しばらくしてから再度お試しください。",
        ),
        "auth.forbidden" => (
            "This is not enabled for this application.",
            "この操作は有効になっていません。",
        ),
        "user.sign_in_method_not_enabled" => (
            "This sign-in method is not enabled.",
            "このサインイン方法は有効になっていません。",
        ),
        "user.sign_up_method_not_enabled" => (
            "This sign-up method is not enabled.",
            "この登録方法は有効になっていません。",
        ),
        "user.username_already_in_use" => (
            "This username is already in use.",
            "このユーザー名はすでに使用されています。",
        ),
        "user.username_too_short" | "user.username_too_long" => (
            "The username does not have an allowed length.",
            "ユーザー名の長さが許可されていません。",
        ),
        "user.username_should_not_start_with_number" => (
            "Username should not start with a number.",
            "ユーザー名を数字で始めることはできません。",
        ),
        "user.username_invalid_charset"
        | "user.username_lowercase_not_allowed"
        | "user.username_uppercase_not_allowed"
        | "user.username_numbers_not_allowed"
        | "user.username_underscore_not_allowed" => (
            "The username contains characters that are not allowed.",
            "ユーザー名に使用できない文字が含まれています。",
        ),
        "password.rejected" => (
            "Password rejected. Please check if your password meets the requirements.",
            "パスワードが拒否されました。要件を満たしているかご確認ください。",
        ),
        "user.missing_profile" => (
            "You need to provide additional info before signing in.",
            "サインインする前に追加の情報が必要です。",
        ),
        "session.not_found" | "session.interaction_finished" => (
            "This sign-in has expired or is already finished.",
            "このサインインは期限切れか、すでに完了しています。",
        ),
        "session.csrf" => (
            "The form expired. Please reload the page and try again.",
            "フォームの有効期限が切れました。ページを再読み込みしてもう一度お試しください。",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

/// One issue of `password.rejected` (`password_rejected.*` with its bounds), as a sentence.
pub fn password_issue(lang: Lang, code: &str, min: Option<u32>, max: Option<u32>) -> String {
    let min = min.unwrap_or_default();
    let max = max.unwrap_or_default();
    match (lang, code) {
        (Lang::En, "password_rejected.too_short") => format!("At least {min} characters."),
        (Lang::Ja, "password_rejected.too_short") => format!("{min}文字以上にしてください。"),
        (Lang::En, "password_rejected.too_long") => format!("At most {max} characters."),
        (Lang::Ja, "password_rejected.too_long") => format!("{max}文字以下にしてください。"),
        (Lang::En, "password_rejected.character_types") => format!(
            "Mix at least {min} of: lowercase letters, uppercase letters, digits and symbols."
        ),
        (Lang::Ja, "password_rejected.character_types") => {
            format!("英小文字・英大文字・数字・記号のうち{min}種類以上を含めてください。")
        }
        (Lang::En, "password_rejected.unsupported_characters") => {
            "Only letters, digits and ASCII symbols are allowed.".to_owned()
        }
        (Lang::Ja, "password_rejected.unsupported_characters") => {
            "英字・数字・ASCII 記号のみ使用できます。".to_owned()
        }
        (Lang::En, "password_rejected.restricted.repetition") => {
            "Avoid repeated characters.".to_owned()
        }
        (Lang::Ja, "password_rejected.restricted.repetition") => {
            "同じ文字の繰り返しは避けてください。".to_owned()
        }
        (Lang::En, "password_rejected.restricted.sequence") => {
            "Avoid sequences such as 123 or abc.".to_owned()
        }
        (Lang::Ja, "password_rejected.restricted.sequence") => {
            "123 や abc のような連続した文字は避けてください。".to_owned()
        }
        (Lang::En, "password_rejected.restricted.words") => "Avoid common words.".to_owned(),
        (Lang::Ja, "password_rejected.restricted.words") => {
            "推測されやすい単語は避けてください。".to_owned()
        }
        (Lang::En, "password_rejected.restricted.user_info") => {
            "Avoid your personal information, such as your username.".to_owned()
        }
        (Lang::Ja, "password_rejected.restricted.user_info") => {
            "ユーザー名などの個人情報は避けてください。".to_owned()
        }
        (Lang::En, _) => "Choose a stronger password.".to_owned(),
        (Lang::Ja, _) => "より強力なパスワードを選んでください。".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(auto_detect: bool, fallback: &str) -> LanguageInfo {
        LanguageInfo {
            auto_detect,
            fallback_language: fallback.into(),
        }
    }

    #[test]
    fn the_page_query_then_the_request_then_the_browser_then_the_fallback() {
        let auto = info(true, "en");
        assert_eq!(
            negotiate(Some("fr ja-JP"), Some("en"), None, &auto),
            Lang::Ja
        );
        assert_eq!(negotiate(Some("fr"), Some("ja"), None, &auto), Lang::Ja);
        assert_eq!(
            negotiate(None, None, Some("de;q=1, en;q=0.5, ja;q=0.8"), &auto),
            Lang::Ja
        );
        assert_eq!(negotiate(None, None, Some("ja;q=0, en"), &auto), Lang::En);
        assert_eq!(
            negotiate(None, None, Some("ja"), &info(false, "en")),
            Lang::En
        );
        assert_eq!(negotiate(None, None, None, &info(true, "ja")), Lang::Ja);
        assert_eq!(negotiate(None, None, None, &info(true, "de")), Lang::En);
    }

    #[test]
    fn every_password_issue_has_a_sentence_in_both_languages() {
        for lang in [Lang::En, Lang::Ja] {
            assert!(
                password_issue(lang, "password_rejected.too_short", Some(8), None).contains('8')
            );
            assert!(error_message(lang, "session.invalid_credentials").is_some());
        }
        assert!(error_message(Lang::En, "no.such_code").is_none());
    }
}
