//! A text template with `{type}` (the event's type) and `{tenant}` placeholders, rendered per
//! event: Splunk's `sourcetype`, CloudWatch's `log_stream`, EventBridge's `detail_type`.

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Type,
    Tenant,
}

impl Template {
    /// Parses `raw` with both placeholders; a `}` outside a placeholder is literal text (a
    /// Splunk `sourcetype` may contain one).
    pub(crate) fn parse(raw: &str) -> Result<Template, String> {
        parse(raw, true, true)
    }

    /// Parses `raw` where braces only ever open or close a placeholder (AWS names, whose
    /// schema pattern allows no other brace); `allow_type` says whether `{type}` is one.
    pub(crate) fn parse_strict(raw: &str, allow_type: bool) -> Result<Template, String> {
        parse(raw, allow_type, false)
    }

    pub(crate) fn render(&self, event_type: &str, tenant: &str) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Type => out.push_str(event_type),
                Part::Tenant => out.push_str(tenant),
            }
        }
        out
    }
}

fn parse(raw: &str, allow_type: bool, literal_close: bool) -> Result<Template, String> {
    let known = if allow_type { "{type}, {tenant}" } else { "{tenant}" };
    let mut parts = Vec::new();
    let mut rest = raw;
    loop {
        let open = if literal_close {
            rest.find('{')
        } else {
            rest.find(['{', '}'])
        };
        let Some(open) = open else { break };
        if rest[open..].starts_with('}') {
            return Err(format!("has a `}}` without `{{` (placeholders: {known})"));
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let after = &rest[open..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("has a `{{` without `}}` (placeholders: {known})"))?;
        parts.push(match &after[..=close] {
            "{type}" if allow_type => Part::Type,
            "{tenant}" => Part::Tenant,
            other => return Err(format!("unknown placeholder `{other}` (known: {known})")),
        });
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(Template(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let t = Template::parse_strict("audit/{tenant}/{type}", true).unwrap();
        assert_eq!(t.render("user.login", "acme"), "audit/acme/user.login");
        assert!(Template::parse_strict("{type}", false).is_err());
        assert!(Template::parse_strict("{tenant", true).is_err());
        assert!(Template::parse_strict("x}", true).is_err());
        assert!(Template::parse_strict("{host}", true).is_err());
    }

    #[test]
    fn a_lone_closing_brace_is_text_unless_strict() {
        assert_eq!(Template::parse("x}{tenant}").unwrap().render("t", "acme"), "x}acme");
        assert!(Template::parse("{tenant").is_err());
        assert!(Template::parse("{host}").is_err());
    }
}
