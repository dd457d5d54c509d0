//! Sensor-name globs (`pump1.*`, `line?.temp`): the one matcher that config checks, queries
//! and selections share, so a pattern means the same thing everywhere.

/// `*` and `?` glob matching.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("pump1.*", "pump1.temp"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("p?mp*.t*p", "pump12.temp"));
        assert!(!glob_match("pump1.*", "pump2.temp"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }
}
