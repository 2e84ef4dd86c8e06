//! A name template with `{type}` and `{tenant}` placeholders (`log_stream`, `detail_type`).

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
    /// Parses `raw`; `known` says which placeholders this field allows.
    pub(crate) fn parse(raw: &str, allow_type: bool) -> Result<Template, String> {
        let known = if allow_type { "{type}, {tenant}" } else { "{tenant}" };
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find(['{', '}']) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let t = Template::parse("audit/{tenant}/{type}", true).unwrap();
        assert_eq!(t.render("user.login", "acme"), "audit/acme/user.login");
        assert!(Template::parse("{type}", false).is_err());
        assert!(Template::parse("{tenant", true).is_err());
        assert!(Template::parse("x}", true).is_err());
        assert!(Template::parse("{host}", true).is_err());
    }
}
