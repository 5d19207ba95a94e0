//! Email templates of a connector's configuration: which one a message uses, and rendering it.
//!
//! Selection follows Logto: the template of the message's usage type, else the `Generic` one,
//! else `connector.template_not_found`. Logto picks per-language templates from its tenant-level
//! email templates; idledger has none, so a configuration template may carry an optional
//! `locale` (`"ja"`), and among the templates of one usage type the one whose language is the
//! first of the recipient's `ui_locales` wins, then one without `locale`, then any.
//!
//! Rendering uses Handlebars over the payload (`code`, `link`, `locale`, `uiLocales`,
//! `application`, `user`, ...). As in Logto, a placeholder whose root key the payload lacks is
//! left as written and a null value renders empty. Unlike Logto, values are HTML-escaped in
//! `text/html` content: a user's name must not be able to inject markup into a mail.

use domain::message::UsageType;
use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub usage_type: String,
    /// `text/plain` or `text/html`.
    pub content_type: String,
    pub subject: String,
    pub content: String,
    #[serde(default)]
    pub locale: Option<String>,
}

impl Template {
    pub fn is_html(&self) -> bool {
        self.content_type == "text/html"
    }
}

/// The primary language subtag, lowercased: `ja-JP` → `ja`.
fn language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn for_usage<'a>(
    templates: &'a [Template],
    usage: &str,
    ui_locales: Option<&str>,
) -> Option<&'a Template> {
    let of_usage: Vec<&Template> = templates.iter().filter(|t| t.usage_type == usage).collect();
    let wanted = ui_locales
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(language);
    for lang in wanted {
        if let Some(found) = of_usage
            .iter()
            .find(|t| t.locale.as_deref().map(language).as_deref() == Some(lang.as_str()))
        {
            return Some(found);
        }
    }
    of_usage
        .iter()
        .find(|t| t.locale.is_none())
        .or_else(|| of_usage.first())
        .copied()
}

/// The template a message of `usage` uses; `None` is Logto's `template_not_found`.
pub fn select<'a>(
    templates: &'a [Template],
    usage: UsageType,
    ui_locales: Option<&str>,
) -> Option<&'a Template> {
    for_usage(templates, usage.as_str(), ui_locales)
        .or_else(|| for_usage(templates, UsageType::Generic.as_str(), ui_locales))
}

/// Escapes placeholders whose root key `payload` lacks (`\{{` renders as `{{`), so Handlebars
/// leaves them as written, as Logto's replacement does.
fn keep_unknown(template: &str, payload: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let inner = from
            .get(2..)
            .and_then(|after| after.find("}}").map(|end| &after[..end]))
            .map(str::trim);
        let unknown = inner.is_some_and(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && key
                    .split('.')
                    .next()
                    .is_some_and(|root| !payload.contains_key(root))
        });
        if unknown && !before.ends_with('\\') {
            out.push('\\');
        }
        out.push_str("{{");
        rest = from.get(2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[derive(Debug, thiserror::Error)]
#[error("the template does not render: {0}")]
pub struct RenderError(String);

/// Renders `text` over `payload`; `html` escapes the values for HTML.
pub fn render(text: &str, payload: &Map<String, Value>, html: bool) -> Result<String, RenderError> {
    let mut registry = Handlebars::new();
    if !html {
        registry.register_escape_fn(handlebars::no_escape);
    }
    registry
        .render_template(&keep_unknown(text, payload), payload)
        .map_err(|error| RenderError(error.to_string()))
}

/// The subject and body of a message.
pub struct Rendered {
    pub subject: String,
    pub body: String,
    pub html: bool,
}

pub fn render_message(
    template: &Template,
    payload: &Map<String, Value>,
) -> Result<Rendered, RenderError> {
    Ok(Rendered {
        // A subject is a header, never HTML.
        subject: render(&template.subject, payload, false)?.replace(['\r', '\n'], " "),
        body: render(&template.content, payload, template.is_html())?,
        html: template.is_html(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(usage: &str, locale: Option<&str>, subject: &str) -> Template {
        Template {
            usage_type: usage.into(),
            content_type: "text/plain".into(),
            subject: subject.into(),
            content: "{{code}}".into(),
            locale: locale.map(str::to_owned),
        }
    }

    #[test]
    fn the_usage_type_then_generic_then_nothing() {
        let templates = vec![
            template("Generic", None, "generic"),
            template("SignIn", None, "sign-in"),
            template("SignIn", Some("ja"), "サインイン"),
        ];
        let pick = |usage, locales| select(&templates, usage, locales).map(|t| t.subject.as_str());
        assert_eq!(pick(UsageType::SignIn, None), Some("sign-in"));
        assert_eq!(
            pick(UsageType::SignIn, Some("ja-JP en")),
            Some("サインイン")
        );
        assert_eq!(pick(UsageType::SignIn, Some("fr en")), Some("sign-in"));
        assert_eq!(pick(UsageType::BindMfa, None), Some("generic"));
        assert_eq!(select(&templates[1..], UsageType::Register, None), None);
    }

    #[test]
    fn placeholders_render_and_unknown_ones_stay() {
        let Value::Object(payload) = json!({
            "code": "123456",
            "user": {"name": "<Ada>", "avatar": null},
            "application": {"name": "Shop"},
        }) else {
            panic!()
        };
        assert_eq!(
            render(
                "{{code}} {{ user.name }} {{application.name}} {{link}} {{user.avatar}}",
                &payload,
                false
            )
            .unwrap(),
            "123456 <Ada> Shop {{link}} "
        );
        assert_eq!(
            render("<b>{{user.name}}</b>", &payload, true).unwrap(),
            "<b>&lt;Ada&gt;</b>"
        );
    }
}
