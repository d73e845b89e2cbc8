//! Kafka's JSON message specs, read into a model the emitter walks.
//!
//! Only wire-relevant attributes are kept: names, types, version ranges, tags, defaults and
//! `ignorable`. Prose (`about`) and Java-only hints (`mapKey`, `entityType`, `zeroCopy`) are dropped.

use super::versions::Versions;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Type {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float64,
    Uuid,
    String,
    Bytes,
    Records,
    Struct(String),
    Array(Box<Type>),
}

impl Type {
    fn parse(text: &str) -> Type {
        if let Some(elem) = text.strip_prefix("[]") {
            return Type::Array(Box::new(Type::parse(elem)));
        }
        match text {
            "bool" => Type::Bool,
            "int8" => Type::Int8,
            "int16" => Type::Int16,
            "uint16" => Type::Uint16,
            "int32" => Type::Int32,
            "uint32" => Type::Uint32,
            "int64" => Type::Int64,
            "float64" => Type::Float64,
            "uuid" => Type::Uuid,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "records" => Type::Records,
            other => Type::Struct(other.to_string()),
        }
    }

    pub fn struct_name(&self) -> Option<&str> {
        match self {
            Type::Struct(n) => Some(n),
            Type::Array(e) => e.struct_name(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Field {
    /// The spec's name, used in error messages.
    pub name: String,
    /// The Rust field name (snake_case, raw identifier if it is a keyword).
    pub ident: String,
    pub ty: Type,
    pub versions: Versions,
    pub nullable: Versions,
    pub tagged: Versions,
    pub tag: Option<u32>,
    pub ignorable: bool,
    /// A per-field override of the message's flexible versions (strings and bytes only).
    pub flexible: Option<Versions>,
    /// The spec's default, "" when none is given.
    pub default: String,
}

impl Field {
    /// Whether the Rust type is an `Option`: nullable in some version, or a records field.
    pub fn is_option(&self) -> bool {
        self.ty == Type::Records || !self.nullable.intersect(self.versions).is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct Struct {
    pub name: String,
    pub fields: Vec<Field>,
    /// The versions this struct can be read or written at: the hull of every use.
    pub versions: Versions,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub name: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    pub valid: Versions,
    pub flexible: Versions,
    /// The spec file this came from, relative to the specs directory.
    pub source: String,
    /// The message itself first, then every nested and common struct in order of first use.
    pub structs: Vec<Struct>,
}

/// Removes the `//` comment lines Kafka's specs carry, leaving plain JSON.
pub fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn parse_message(text: &str, source: &str) -> Result<Message, String> {
    let json: Value = serde_json::from_str(&strip_comments(text))
        .map_err(|e| format!("{source}: invalid JSON: {e}"))?;
    let obj = json.as_object().ok_or(format!("{source}: not an object"))?;
    let name = get_str(obj, "name")?.to_string();
    let kind = match get_str(obj, "type")? {
        "request" => Kind::Request,
        "response" => Kind::Response,
        "header" => Kind::Header,
        "data" => Kind::Data,
        other => return Err(format!("{source}: unknown message type {other}")),
    };
    let api_key = match obj.get("apiKey") {
        Some(v) => Some(
            v.as_i64()
                .and_then(|k| i16::try_from(k).ok())
                .ok_or(format!("{source}: bad apiKey"))?,
        ),
        None => None,
    };
    if matches!(kind, Kind::Request | Kind::Response) && api_key.is_none() {
        return Err(format!("{source}: {name} has no apiKey"));
    }
    let valid = Versions::parse(get_str(obj, "validVersions")?)?;
    let flexible = match obj.get("flexibleVersions") {
        Some(v) => Versions::parse(v.as_str().ok_or("flexibleVersions")?)?,
        None => Versions::NONE,
    };

    let mut defs: Vec<Struct> = Vec::new();
    let top_fields = parse_fields(obj, &mut defs, &name)?;
    defs.insert(
        0,
        Struct {
            name: name.clone(),
            fields: top_fields,
            versions: Versions::NONE,
        },
    );
    if let Some(common) = obj.get("commonStructs") {
        for c in common.as_array().ok_or("commonStructs")? {
            let c = c.as_object().ok_or("commonStructs entry")?;
            let cname = get_str(c, "name")?.to_string();
            let fields = parse_fields(c, &mut defs, &cname)?;
            defs.push(Struct {
                name: cname,
                fields,
                versions: Versions::NONE,
            });
        }
    }

    // Order structs by first use (depth first from the message) and compute their ranges.
    let by_name: BTreeMap<String, Struct> = {
        let mut m = BTreeMap::new();
        for s in defs {
            if m.insert(s.name.clone(), s).is_some() {
                return Err(format!("{source}: struct defined twice"));
            }
        }
        m
    };
    let mut order: Vec<String> = Vec::new();
    let mut ranges: BTreeMap<String, Versions> = BTreeMap::new();
    visit(&by_name, &name, valid, &mut order, &mut ranges)?;
    let structs = order
        .iter()
        .map(|n| {
            let mut s = by_name[n].clone();
            s.versions = ranges[n];
            s
        })
        .collect();

    let msg = Message {
        name,
        kind,
        api_key,
        valid,
        flexible,
        source: source.to_string(),
        structs,
    };
    validate(&msg)?;
    Ok(msg)
}

fn visit(
    defs: &BTreeMap<String, Struct>,
    name: &str,
    range: Versions,
    order: &mut Vec<String>,
    ranges: &mut BTreeMap<String, Versions>,
) -> Result<(), String> {
    let s = defs
        .get(name)
        .ok_or_else(|| format!("struct {name} is used but never defined"))?;
    if !ranges.contains_key(name) {
        order.push(name.to_string());
    }
    let r = ranges.entry(name.to_string()).or_insert(Versions::NONE);
    *r = r.hull(range);
    for f in &s.fields {
        if let Some(child) = f.ty.struct_name() {
            let child_range = f.versions.intersect(range);
            if !child_range.is_empty() || !ranges.contains_key(child) {
                visit(defs, child, child_range, order, ranges)?;
            }
        }
    }
    Ok(())
}

fn parse_fields(
    obj: &Map<String, Value>,
    defs: &mut Vec<Struct>,
    owner: &str,
) -> Result<Vec<Field>, String> {
    let Some(list) = obj.get("fields") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or(format!("{owner}: fields is not a list"))?;
    let mut fields = Vec::new();
    for f in list {
        let f = f
            .as_object()
            .ok_or(format!("{owner}: field is not an object"))?;
        let field = parse_field(f, owner)?;
        if f.contains_key("fields") {
            let sname = field
                .ty
                .struct_name()
                .ok_or(format!("{owner}.{}: fields on a non-struct", field.name))?
                .to_string();
            let sub = parse_fields(f, defs, &sname)?;
            defs.push(Struct {
                name: sname,
                fields: sub,
                versions: Versions::NONE,
            });
        }
        fields.push(field);
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &fields {
        if !seen.insert(f.ident.clone()) {
            return Err(format!("{owner}: two fields map to {}", f.ident));
        }
    }
    Ok(fields)
}

fn parse_field(f: &Map<String, Value>, owner: &str) -> Result<Field, String> {
    let name = get_str(f, "name")?.to_string();
    let ctx = format!("{owner}.{name}");
    let opt_versions = |key: &str| -> Result<Option<Versions>, String> {
        match f.get(key) {
            None => Ok(None),
            Some(v) => Versions::parse(v.as_str().ok_or(format!("{ctx}: {key}"))?).map(Some),
        }
    };
    let tagged = opt_versions("taggedVersions")?.unwrap_or(Versions::NONE);
    let versions = match opt_versions("versions")? {
        Some(v) => v,
        None if !tagged.is_empty() => tagged,
        None => return Err(format!("{ctx}: no versions")),
    };
    let tag = match f.get("tag") {
        None => None,
        // One spec writes its tag as a string; Kafka's reader accepts both.
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|t| u32::try_from(t).ok())
                .ok_or(format!("{ctx}: bad tag"))?,
        ),
    };
    if tagged.is_empty() != tag.is_none() {
        return Err(format!("{ctx}: tag and taggedVersions go together"));
    }
    let default = match f.get("default") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => return Err(format!("{ctx}: bad default")),
    };
    let ignorable = f.get("ignorable").and_then(Value::as_bool).unwrap_or(false);
    let ty = Type::parse(get_str(f, "type")?.trim());
    Ok(Field {
        ident: rust_ident(&snake_case(&name)),
        name,
        ty,
        versions,
        nullable: opt_versions("nullableVersions")?.unwrap_or(Versions::NONE),
        tagged,
        tag,
        ignorable,
        flexible: opt_versions("flexibleVersions")?,
        default,
    })
}

fn validate(msg: &Message) -> Result<(), String> {
    for s in &msg.structs {
        let mut tags = std::collections::BTreeSet::new();
        for f in &s.fields {
            let ctx = format!("{}: {}.{}", msg.source, s.name, f.name);
            let flexible = f.flexible.unwrap_or(msg.flexible);
            if !f.tagged.is_subset_of(flexible) || !f.tagged.is_subset_of(f.versions) {
                return Err(format!("{ctx}: tagged versions outside flexible versions"));
            }
            if let Some(t) = f.tag {
                if !tags.insert(t) {
                    return Err(format!("{ctx}: tag {t} used twice"));
                }
            }
            if f.ty == Type::Records && !f.tagged.is_empty() {
                return Err(format!("{ctx}: records cannot be tagged"));
            }
            if f.flexible.is_some() && !matches!(f.ty, Type::String | Type::Bytes) {
                return Err(format!("{ctx}: flexibleVersions override on a non-string"));
            }
            if let Type::Array(e) = &f.ty {
                if matches!(**e, Type::Array(_) | Type::Records) {
                    return Err(format!("{ctx}: unsupported array element"));
                }
            }
            f.versions.subtract(f.tagged)?;
        }
    }
    Ok(())
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string attribute {key}"))
}

/// `ThrottleTimeMs` → `throttle_time_ms`, `memberId` → `member_id`, `KRaftVersion` → `k_raft_version`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rust_ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
        "move", "mut", "pub", "ref", "return", "static", "struct", "super", "trait", "true", "try",
        "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final",
        "macro", "override", "priv", "typeof", "unsized", "virtual", "yield",
    ];
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_follows_kafka_names() {
        assert_eq!(snake_case("ThrottleTimeMs"), "throttle_time_ms");
        assert_eq!(snake_case("memberId"), "member_id");
        assert_eq!(snake_case("KRaftVersion"), "k_raft_version");
        assert_eq!(snake_case("Name"), "name");
        assert_eq!(snake_case("IsrNodes"), "isr_nodes");
    }
}
