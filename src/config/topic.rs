//! Topic templates: `plant/{line}/{machine}/telemetry` is both the subscription filter
//! `plant/+/+/telemetry` and a pattern that names the levels it captures, so one
//! subscription maps a whole plant's topics to sensor names.

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Var(String),
    Plus,
    Hash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    levels: Vec<Level>,
}

impl TopicTemplate {
    /// Parses a template; `{name}` must fill a whole level, `#` only the last one.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        if text.is_empty() {
            return Err("empty topic".into());
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let level = match *part {
                "+" => Level::Plus,
                "#" if i + 1 == parts.len() => Level::Hash,
                "#" => return Err(format!("{text:?}: '#' must be the last level")),
                p if p.starts_with('{') && p.ends_with('}') => {
                    let name = &p[1..p.len() - 1];
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(format!(
                            "{text:?}: {p:?} is not a valid {{name}} level (letters, digits, '_')"
                        ));
                    }
                    if levels.iter().any(|l| matches!(l, Level::Var(n) if n == name)) {
                        return Err(format!("{text:?}: {{{name}}} appears twice"));
                    }
                    Level::Var(name.to_string())
                }
                p if p.contains(['{', '}', '+', '#']) => {
                    return Err(format!("{text:?}: level {p:?} mixes text with a placeholder or wildcard; a placeholder or wildcard must be a whole level"));
                }
                p => Level::Literal(p.to_string()),
            };
            levels.push(level);
        }
        Ok(TopicTemplate { levels })
    }

    /// The MQTT subscription filter.
    pub fn filter(&self) -> String {
        self.levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Var(_) | Level::Plus => "+",
                Level::Hash => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Names of the captured levels.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().filter_map(|l| match l {
            Level::Var(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The captured levels when `topic` matches, `None` otherwise.
    pub fn capture(&self, topic: &str) -> Option<Vec<(String, String)>> {
        let mut parts = topic.split('/');
        let mut vars = Vec::new();
        for level in &self.levels {
            match level {
                Level::Hash => return Some(vars),
                Level::Plus => {
                    parts.next()?;
                }
                Level::Var(name) => vars.push((name.clone(), parts.next()?.to_string())),
                Level::Literal(s) => {
                    if parts.next()? != s {
                        return None;
                    }
                }
            }
        }
        parts.next().is_none().then_some(vars)
    }
}

/// Substitutes `{agent}` and `{asset}` in a topic template.
pub fn render_topic(template: &str, agent: &str, asset: &str) -> String {
    template.replace("{agent}", agent).replace("{asset}", asset)
}

/// Substitutes `{site}`, `{agent}` and `{asset}` in a topic template.
pub fn render_topic_at(template: &str, site: Option<&str>, agent: &str, asset: &str) -> String {
    render_topic(&template.replace("{site}", site.unwrap_or("")), agent, asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_levels() {
        let t = TopicTemplate::parse("plant/{line}/{machine}/telemetry").unwrap();
        assert_eq!(t.filter(), "plant/+/+/telemetry");
        assert_eq!(
            t.capture("plant/line1/pump7/telemetry").unwrap(),
            vec![("line".into(), "line1".into()), ("machine".into(), "pump7".into())]
        );
        assert!(t.capture("plant/line1/pump7/status").is_none());
        assert!(t.capture("plant/line1/pump7/telemetry/extra").is_none());
        assert!(t.capture("plant/line1").is_none());
        let h = TopicTemplate::parse("spBv1.0/#").unwrap();
        assert_eq!(
            (h.filter().as_str(), h.capture("spBv1.0/g/NDATA/e").is_some()),
            ("spBv1.0/#", true)
        );
        assert!(TopicTemplate::parse("a/b").unwrap().capture("a/b").is_some());
    }

    #[test]
    fn bad_templates_are_explained() {
        for bad in ["", "a/#/b", "a/x{y}/b", "a/{}/b", "a/{x}/{x}", "a/b+/c", "a/{x-y}"] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
