//! Event-type globs (`decision.*`, `auth.log?n`), used by `types=` filters and sink
//! `event_types`. `*` matches any run of characters (dots included), `?` exactly one.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid type glob `{pattern}`: use 1–128 characters of [a-z0-9_.-] plus the wildcards * and ?")]
pub struct GlobError {
    pub pattern: String,
}

/// A set of type globs; empty matches every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    patterns: Vec<String>,
}

impl TypeFilter {
    pub fn all() -> Self {
        TypeFilter::default()
    }

    /// Parses a comma-separated list (`decision.*,auth.login`); blanks are ignored.
    pub fn parse_list(list: &str) -> Result<Self, GlobError> {
        Self::from_patterns(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, GlobError> {
        let mut out = Vec::new();
        for p in patterns {
            let ok = !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-*?".contains(&b));
            if !ok {
                return Err(GlobError { pattern: p.to_owned() });
            }
            out.push(p.to_owned());
        }
        Ok(TypeFilter { patterns: out })
    }

    pub fn is_all(&self) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p == "*")
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.is_all()
            || self
                .patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), event_type.as_bytes()))
    }
}

/// Iterative wildcard match with single-star backtracking: linear in practice, no recursion.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let f = TypeFilter::parse_list("decision.*, auth.log?n").unwrap();
        assert!(f.matches("decision.rejected"));
        assert!(f.matches("decision.a.b"));
        assert!(f.matches("auth.login"));
        assert!(!f.matches("auth.logout"));
        assert!(!f.matches("decisions.x"));
        assert!(TypeFilter::parse_list("").unwrap().matches("anything.at_all"));
        assert!(TypeFilter::parse_list("*").unwrap().is_all());
        assert!(TypeFilter::parse_list("*.login").unwrap().matches("auth.login"));
    }

    #[test]
    fn rejects_odd_characters() {
        assert!(TypeFilter::parse_list("a.[b]").is_err());
        assert!(TypeFilter::parse_list("A.*").is_err());
        assert!(TypeFilter::parse_list("a'; drop").is_err());
    }
}
