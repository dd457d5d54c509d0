//! The parts of JSON Schema the project's schemas use, checked without a library: the
//! messages the agent publishes are validated against `schema/*.schema.json`.

use serde_json::Value;

/// Checks `v` against the parts of JSON Schema the alert schema uses: type, const, enum,
/// required, properties, additionalProperties, items, minItems, minimum, maximum, oneOf.
pub fn validate(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => false,
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => errors.push(format!("{at}: not a {t}: {v}")),
        Value::Array(ts) if !ts.iter().any(|t| t.as_str().is_some_and(type_ok)) => {
            errors.push(format!("{at}: none of {ts:?}: {v}"))
        }
        _ => {}
    }
    if let Some(c) = schema.get("const").filter(|c| *c != v) {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(options) = schema["enum"].as_array().filter(|o| !o.contains(v)) {
        errors.push(format!("{at}: {v} not in {options:?}"));
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if x < min {
            errors.push(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if x > max {
            errors.push(format!("{at}: {x} > {max}"));
        }
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let valid = branches
            .iter()
            .filter(|b| {
                let mut errs = Vec::new();
                validate(b, v, at, &mut errs);
                errs.is_empty()
            })
            .count();
        if valid != 1 {
            errors.push(format!("{at}: matches {valid} of the oneOf branches, not one: {v}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap_or_default()) {
                errors.push(format!("{at}: missing {r}"));
            }
        }
        for (k, sub) in obj {
            match schema["properties"].get(k) {
                Some(s) => validate(s, sub, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == false => errors.push(format!("{at}: unexpected {k}")),
                None => {}
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                errors.push(format!("{at}: fewer than {min} items"));
            }
        }
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
}
