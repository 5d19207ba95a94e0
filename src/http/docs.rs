//! A browsable page of the Management API built from our own OpenAPI document, server-rendered
//! so it works offline (no CDN-hosted Swagger UI).

use serde_json::Value;

use super::pages::escape;

fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    match (schema["type"].as_str(), schema.get("items")) {
        (Some("array"), Some(items)) => format!("{}[]", schema_name(items)),
        (Some(kind), _) => kind.to_owned(),
        (None, _) => "object".to_owned(),
    }
}

fn operation(method: &str, path: &str, op: &Value) -> String {
    let mut html = format!(
        "<section id=\"{id}\"><h3><span class=\"m {method}\">{upper}</span> <code>{path}</code></h3>",
        id = escape(&format!("{method}-{path}")),
        upper = method.to_uppercase(),
        path = escape(path),
    );
    for key in ["summary", "description"] {
        if let Some(text) = op[key].as_str().filter(|t| !t.is_empty()) {
            html.push_str(&format!("<p>{}</p>", escape(text)));
        }
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        html.push_str(
            "<table><tr><th>parameter</th><th>in</th><th>required</th><th>description</th></tr>",
        );
        for param in params {
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(param["name"].as_str().unwrap_or_default()),
                escape(param["in"].as_str().unwrap_or_default()),
                if param["required"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                escape(param["description"].as_str().unwrap_or_default()),
            ));
        }
        html.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        for (media, body) in content {
            html.push_str(&format!(
                "<p>Body <code>{}</code>: <a href=\"#schema-{name}\">{name}</a></p>",
                escape(media),
                name = escape(&schema_name(&body["schema"])),
            ));
        }
    }
    if let Some(responses) = op["responses"].as_object() {
        html.push_str("<ul>");
        for (status, response) in responses {
            let body = response["content"]["application/json"]["schema"].clone();
            let shape = if body.is_null() {
                String::new()
            } else {
                format!(" — <code>{}</code>", escape(&schema_name(&body)))
            };
            html.push_str(&format!(
                "<li><b>{}</b> {}{shape}</li>",
                escape(status),
                escape(response["description"].as_str().unwrap_or_default())
            ));
        }
        html.push_str("</ul>");
    }
    html.push_str("</section>");
    html
}

/// The whole document as one HTML page.
pub fn render(openapi: &Value) -> String {
    let mut body = String::new();
    let title = openapi["info"]["title"].as_str().unwrap_or("API");
    body.push_str(&format!(
        "<h1>{}</h1><p>{} — machine-readable: <a href=\"/api/swagger.json\">/api/swagger.json</a></p>",
        escape(title),
        escape(openapi["info"]["description"].as_str().unwrap_or_default())
    ));
    let mut sections = String::new();
    let mut index = String::from("<nav><ul>");
    if let Some(paths) = openapi["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(op) = item.get(method) {
                    index.push_str(&format!(
                        "<li><a href=\"#{}\">{} {}</a></li>",
                        escape(&format!("{method}-{path}")),
                        method.to_uppercase(),
                        escape(path)
                    ));
                    sections.push_str(&operation(method, path, op));
                }
            }
        }
    }
    index.push_str("</ul></nav>");
    body.push_str(&index);
    body.push_str(&sections);
    body.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = openapi["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            body.push_str(&format!(
                "<section id=\"schema-{n}\"><h3>{n}</h3><pre>{}</pre></section>",
                escape(&serde_json::to_string_pretty(schema).unwrap_or_default()),
                n = escape(name)
            ));
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem}}\
         .m{{font-family:monospace;padding:0 .3rem;border-radius:3px;color:#fff}}.get{{background:#2b7}}\
         .post{{background:#27b}}.put{{background:#b72}}.patch{{background:#a5b}}.delete{{background:#c33}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .4rem}}\
         pre{{background:#f6f6f6;padding:.5rem;overflow:auto}}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_parameters_and_schemas_are_listed_and_escaped() {
        let html = render(&json!({
            "info": {"title": "T <x>", "description": "d"},
            "paths": {"/api/things/{id}": {"get": {
                "summary": "Get a thing",
                "parameters": [{"name": "id", "in": "path", "required": true}],
                "responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}
            }}},
            "components": {"schemas": {"Thing": {"type": "object"}}}
        }));
        assert!(html.contains("T &lt;x&gt;"));
        assert!(html.contains("GET /api/things/{id}"));
        assert!(html.contains("<code>Thing</code>"));
        assert!(html.contains("id=\"schema-Thing\""));
    }
}
