//! Field templates of the tenant mappings: `{first_name|slug}.{last_name|slug}.acme.glance.net`.
//!
//! A template is literal text with placeholders `{name|filter|filter:arg}`; `{{` and `}}` are
//! literal braces. Templates are compiled once, when the configuration is loaded, so a typo
//! stops start-up instead of failing every hire.

use std::fmt;

pub use super::event::EmployeeField;
use super::event::Hire;

/// What a placeholder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    EventId,
    Tenant,
    Employee(EmployeeField),
}

impl Var {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "event_id" => Ok(Var::EventId),
            "tenant" => Ok(Var::Tenant),
            _ => EmployeeField::ALL.into_iter().find(|f| f.name() == name).map(Var::Employee).ok_or_else(|| {
                let names: Vec<&str> = EmployeeField::ALL.iter().map(|f| f.name()).collect();
                format!("unknown placeholder {{{name}}}; expected event_id, tenant or one of {}", names.join(", "))
            }),
        }
    }

    fn read(self, hire: &Hire) -> Option<String> {
        match self {
            Var::EventId => Some(hire.event_id.clone()),
            Var::Tenant => Some(hire.tenant.clone()),
            Var::Employee(f) => f.read(&hire.employee),
        }
    }

    /// The employee value it reads, if it reads one.
    pub fn employee_field(self) -> Option<EmployeeField> {
        match self {
            Var::Employee(f) => Some(f),
            Var::EventId | Var::Tenant => None,
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::EventId => f.write_str("event_id"),
            Var::Tenant => f.write_str("tenant"),
            Var::Employee(e) => write!(f, "employee.{}", e.name()),
        }
    }
}

/// One transformation of a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Lower-case (Unicode-aware; combine with `fold` for ASCII).
    Lower,
    Upper,
    Trim,
    /// ASCII-fold by transliteration (`José` → `Jose`, `王伟` → `Wang Wei`), via `deunicode`.
    Fold,
    /// Fold, lower-case, drop apostrophes, and turn every other run of non-alphanumerics into
    /// the separator (default `-`), trimmed at both ends: `O'Brien-Smith` → `obrien-smith`.
    Slug(char),
    /// Keep at most N characters; separators left dangling at the end are removed.
    Truncate(usize),
    /// Keep only the ASCII digits.
    Digits,
    /// Use this text when the value is missing or empty at this point.
    Default(String),
}

impl Filter {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (name, arg) = match raw.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (raw, None),
        };
        let no_arg = |f: Filter| match arg {
            None => Ok(f),
            Some(_) => Err(format!("filter `{name}` takes no argument")),
        };
        match name {
            "lower" => no_arg(Filter::Lower),
            "upper" => no_arg(Filter::Upper),
            "trim" => no_arg(Filter::Trim),
            "fold" => no_arg(Filter::Fold),
            "digits" => no_arg(Filter::Digits),
            "slug" => match arg {
                None => Ok(Filter::Slug('-')),
                Some(s) if s.len() == 1 && matches!(s, "-" | "_" | ".") => Ok(Filter::Slug(s.chars().next().unwrap_or('-'))),
                Some(s) => Err(format!("slug separator must be one of - _ . (got {s:?})")),
            },
            "truncate" => arg
                .and_then(|a| a.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .map(Filter::Truncate)
                .ok_or_else(|| "truncate needs a positive length, e.g. truncate:20".to_owned()),
            "default" => Ok(Filter::Default(arg.unwrap_or_default().to_owned())),
            other => Err(format!(
                "unknown filter `{other}`; expected lower, upper, trim, fold, slug[:sep], truncate:N, digits or default:TEXT"
            )),
        }
    }

    fn apply(&self, value: String) -> String {
        match self {
            Filter::Lower => value.to_lowercase(),
            Filter::Upper => value.to_uppercase(),
            Filter::Trim => value.trim().to_owned(),
            Filter::Fold => fold(&value),
            Filter::Slug(sep) => slug(&value, *sep),
            Filter::Truncate(n) => {
                let cut: String = value.chars().take(*n).collect();
                if cut.chars().count() < value.chars().count() {
                    cut.trim_end_matches(['-', '_', '.', ' ']).to_owned()
                } else {
                    cut
                }
            }
            Filter::Digits => value.chars().filter(char::is_ascii_digit).collect(),
            Filter::Default(d) if value.is_empty() => d.clone(),
            Filter::Default(_) => value,
        }
    }
}

/// ASCII transliteration by `deunicode`, except that symbols are not spelled out: deunicode
/// turns `🙂` into "slight smile", but a pictogram in a name is decoration, not part of an
/// address. Letters and digits of any script are transliterated (`王` → "Wang"); other
/// characters keep only a punctuation-like transliteration (`’` → `'`, `‐` → `-`).
fn fold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if let Some(t) = deunicode::deunicode_char(c) {
            if c.is_alphanumeric() || !t.bytes().any(|b| b.is_ascii_alphanumeric()) {
                out.push_str(t);
            }
        }
    }
    out
}

fn slug(value: &str, sep: char) -> String {
    let folded = fold(value).to_ascii_lowercase();
    let mut out = String::with_capacity(folded.len());
    let mut pending_sep = false;
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push(sep);
            }
            pending_sep = false;
            out.push(c);
        } else if c != '\'' && c != '`' {
            // Apostrophes vanish (O'Brien is "obrien", not "o-brien"); other runs separate.
            pending_sep = true;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder { var: Var, filters: Vec<Filter> },
}

/// A compiled template with the filters applied to its whole result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    filters: Vec<Filter>,
}

impl Template {
    pub fn parse(source: &str, filters: &[String]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err("unmatched `}` (write `}}` for a literal brace)".into());
            }
            let end = tail.find('}').ok_or("unclosed `{` (write `{{` for a literal brace)")?;
            let inner = &tail[1..end];
            let mut pieces = inner.split('|').map(str::trim);
            let var = Var::parse(pieces.next().unwrap_or_default())?;
            let filters = pieces.map(Filter::parse).collect::<Result<Vec<_>, _>>()?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Placeholder { var, filters });
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let filters = filters.iter().map(|f| Filter::parse(f)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { source: source.to_owned(), parts, filters })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template. A placeholder whose value is missing or ends up empty (after its
    /// filters, `default` included) is an error naming it: an empty piece would silently
    /// produce `.doe.acme.glance.net`.
    pub fn render(&self, hire: &Hire) -> Result<String, Missing> {
        self.render_with(|var| var.read(hire))
    }

    /// The employee values the template reads.
    pub fn employee_fields(&self) -> impl Iterator<Item = EmployeeField> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder { var, .. } => var.employee_field(),
            Part::Literal(_) => None,
        })
    }

    /// [`Template::render`] with each placeholder's value from `read`: an update renders
    /// from the values it changed.
    pub fn render_with(&self, read: impl Fn(Var) -> Option<String>) -> Result<String, Missing> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder { var, filters } => {
                    let raw = read(*var);
                    let was_present = raw.as_deref().is_some_and(|s| !s.is_empty());
                    let value = filters.iter().fold(raw.unwrap_or_default(), |v, f| f.apply(v));
                    if value.is_empty() {
                        return Err(Missing { var: *var, was_present });
                    }
                    out.push_str(&value);
                }
            }
        }
        Ok(self.filters.iter().fold(out, |v, f| f.apply(v)))
    }
}

/// A placeholder that produced nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing {
    pub var: Var,
    /// It had a value, which the filters reduced to nothing (e.g. `digits` of "n/a").
    pub was_present: bool,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.was_present {
            write!(f, "{} became empty after its filters (add a `default:` filter or change the mapping)", self.var)
        } else {
            write!(f, "{} is missing or empty", self.var)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hire::event::testing::hire_of;

    fn render(src: &str, filters: &[&str], first: &str, last: &str) -> Result<String, String> {
        let filters: Vec<String> = filters.iter().map(|s| (*s).to_owned()).collect();
        let t = Template::parse(src, &filters)?;
        t.render(&hire_of(first, last)).map_err(|m| m.to_string())
    }

    #[test]
    fn filters_do_what_they_say() {
        assert_eq!(Filter::Lower.apply("JaNe".into()), "jane");
        assert_eq!(Filter::Fold.apply("José Núñez".into()), "Jose Nunez");
        assert_eq!(Filter::Fold.apply("Zoë 🙂".into()), "Zoe ");
        assert_eq!(Filter::Slug('-').apply("Zoë O'Brien-Smith".into()), "zoe-obrien-smith");
        assert_eq!(Filter::Slug('_').apply("  Jean--Luc  ".into()), "jean_luc");
        assert_eq!(Filter::Truncate(5).apply("abc_defgh".into()), "abc_d");
        assert_eq!(Filter::Truncate(4).apply("abc_defgh".into()), "abc", "a dangling separator is dropped");
        assert_eq!(Filter::Digits.apply("+1 (858) 555-1731".into()), "18585551731");
        assert_eq!(Filter::Default("Staff".into()).apply(String::new()), "Staff");
        assert_eq!(Filter::Default("Staff".into()).apply("Sales".into()), "Sales");
    }

    #[test]
    fn unicode_names_fold_to_ascii() {
        assert_eq!(
            render("{first_name|slug}.{last_name|slug}.acme.glance.net", &[], "José", "Núñez").unwrap(),
            "jose.nunez.acme.glance.net"
        );
        assert_eq!(
            render("{first_name|slug}.{last_name|slug}", &[], "Zoë", "O'Brien-Smith").unwrap(),
            "zoe.obrien-smith"
        );
        assert_eq!(render("{first_name|slug}.{last_name|slug}", &[], "伟", "王").unwrap(), "wei.wang");
        assert_eq!(
            render(
                "{first_name|slug:_}_{last_name|slug:_}",
                &["truncate:20"],
                "Maximiliana",
                "Wolfeschlegelsteinhausen"
            )
            .unwrap(),
            "maximiliana_wolfesch"
        );
    }

    #[test]
    fn a_name_that_folds_to_nothing_is_an_error_naming_it() {
        let err = render("{first_name|slug}.{last_name|slug}", &[], "🙂", "Doe").unwrap_err();
        assert_eq!(
            err,
            "employee.first_name became empty after its filters (add a `default:` filter or change the mapping)"
        );
        let err = render("{department}", &[], "Jane", "Doe").unwrap_err();
        assert_eq!(err, "employee.department is missing or empty");
        assert_eq!(render("{department|default:Staff}", &[], "Jane", "Doe").unwrap(), "Staff");
    }

    #[test]
    fn template_syntax_errors_are_clear() {
        assert!(Template::parse("{first}", &[]).unwrap_err().contains("unknown placeholder {first}"));
        assert!(Template::parse("{first_name|shout}", &[]).unwrap_err().contains("unknown filter `shout`"));
        assert!(Template::parse("{first_name", &[]).unwrap_err().contains("unclosed"));
        assert!(Template::parse("a}b", &[]).unwrap_err().contains("unmatched"));
        assert!(Template::parse("x", &["truncate:0".into()]).unwrap_err().contains("positive length"));
        assert_eq!(render("{{{tenant}}}", &[], "J", "D").unwrap(), "{acme}");
    }
}
