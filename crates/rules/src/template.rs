//! The part of Go's `text/template` that Prometheus alert labels and annotations use: text with
//! `{{ }}` actions (`{{-`/`-}}` trim spaces, `{{/* */}}` comments), pipelines of a value through
//! functions, the variables `$labels`, `$value`, `$externalLabels`, `$externalURL` (and `.Labels`,
//! `.Value`, …), string and number literals, and the functions `humanize`, `humanize1024`,
//! `humanizeDuration`, `humanizePercentage`, `humanizeTimestamp`, `printf`, `toUpper`,
//! `toLower`, `title`, `match`, `reReplaceAll`. Templates are parsed when a rule is loaded, so an
//! unknown function or an unsupported control structure (`if`, `range`) is refused at load
//! with its position instead of rendering wrong text later.

use std::collections::BTreeMap;

use crate::gofmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Pipeline(Vec<Command>),
}

/// One stage of a pipeline: a function with arguments, or a bare operand.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Call(Function, Vec<Operand>),
    Value(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Humanize,
    Humanize1024,
    HumanizeDuration,
    HumanizePercentage,
    HumanizeTimestamp,
    Printf,
    ToUpper,
    ToLower,
    Title,
    Match,
    ReReplaceAll,
}

impl Function {
    fn named(name: &str) -> Option<Function> {
        Some(match name {
            "humanize" => Function::Humanize,
            "humanize1024" => Function::Humanize1024,
            "humanizeDuration" => Function::HumanizeDuration,
            "humanizePercentage" => Function::HumanizePercentage,
            "humanizeTimestamp" => Function::HumanizeTimestamp,
            "printf" => Function::Printf,
            "toUpper" => Function::ToUpper,
            "toLower" => Function::ToLower,
            "title" => Function::Title,
            "match" => Function::Match,
            "reReplaceAll" => Function::ReReplaceAll,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `$name.field…` (`$` alone is the data).
    Variable(String, Vec<String>),
    /// `.Field.key…` (`.` alone is the data).
    Field(Vec<String>),
    Text(String),
    Number(f64),
    Bool(bool),
}

/// What a template sees: the alert's labels and value, and the process' external labels/URL.
pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

#[derive(Debug, Clone)]
enum Value<'a> {
    Text(String),
    Number(f64),
    Bool(bool),
    Map(&'a BTreeMap<String, String>),
    Data,
    /// A missing map key: Go prints `<no value>`.
    Missing,
}

impl Value<'_> {
    fn print(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Number(number) => gofmt::format_g(*number, None),
            Value::Bool(flag) => flag.to_string(),
            Value::Map(map) => {
                let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", pairs.join(" "))
            }
            Value::Data => "{…}".into(),
            Value::Missing => "<no value>".into(),
        }
    }

    /// Prometheus' `convertToFloat`: numbers, and text that parses as one.
    fn number(&self, function: &str) -> Result<f64, String> {
        match self {
            Value::Number(number) => Ok(*number),
            Value::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("{function}: cannot convert {text:?} to a number")),
            other => Err(format!(
                "{function}: cannot convert {} to a number",
                other.print()
            )),
        }
    }
}

impl Template {
    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template is plain text (no actions).
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Text(_)))
    }

    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            let mut literal = rest[..open].to_owned();
            let after_open = &rest[open + 2..];
            let trim_left = after_open.starts_with("- ")
                || after_open.starts_with("-\t")
                || after_open.starts_with("-\n");
            if trim_left {
                literal.truncate(literal.trim_end().len());
            }
            if !literal.is_empty() {
                parts.push(Part::Text(literal));
            }
            let close = after_open
                .find("}}")
                .ok_or_else(|| format!("column {}: unclosed action", offset + open + 1))?;
            let mut body = &after_open[..close];
            if trim_left {
                body = &body[1..];
            }
            let trim_right = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
            if trim_right {
                body = &body[..body.len() - 1];
            }
            let column = offset + open + 1;
            let body = body.trim();
            if !(body.starts_with("/*") && body.ends_with("*/")) {
                let pipeline =
                    parse_pipeline(body).map_err(|error| format!("column {column}: {error}"))?;
                parts.push(Part::Pipeline(pipeline));
            }
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
            if trim_right {
                let trimmed = rest.trim_start();
                offset += rest.len() - trimmed.len();
                rest = trimmed;
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// Renders the template. Like Prometheus, an error during rendering becomes the text
    /// `<error expanding template: …>` rather than a missing annotation.
    pub fn render(&self, data: &TemplateData) -> String {
        let mut output = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => output.push_str(text),
                Part::Pipeline(commands) => match run_pipeline(commands, data) {
                    Ok(value) => output.push_str(&value.print()),
                    Err(error) => return format!("<error expanding template: {error}>"),
                },
            }
        }
        output
    }
}

fn tokenize(body: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' || c == '(' || c == ')' {
            tokens.push(c.to_string());
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut escaped = false;
            let mut end = None;
            for (index, next) in chars.by_ref() {
                if c == '"' && next == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if next == c && !escaped {
                    end = Some(index);
                    break;
                }
                escaped = false;
            }
            let end = end.ok_or("unterminated string")?;
            tokens.push(body[start..=end].to_owned());
        } else {
            let mut end = body.len();
            while let Some(&(index, next)) = chars.peek() {
                if next.is_whitespace() || next == '|' || next == '(' || next == ')' {
                    end = index;
                    break;
                }
                chars.next();
            }
            tokens.push(body[start..end].to_owned());
        }
    }
    Ok(tokens)
}

fn parse_pipeline(body: &str) -> Result<Vec<Command>, String> {
    if body.is_empty() {
        return Err("missing value for command".into());
    }
    let tokens = tokenize(body)?;
    if let Some(first) = tokens.first() {
        if matches!(
            first.as_str(),
            "if" | "else"
                | "end"
                | "range"
                | "with"
                | "define"
                | "template"
                | "block"
                | "break"
                | "continue"
        ) {
            return Err(format!("`{first}` is not supported in Andante's templates (variables, pipelines and functions are)"));
        }
    }
    if tokens
        .iter()
        .any(|token| token == ":=" || token == "=" || token == "(" || token == ")")
    {
        return Err("variable assignment and parentheses are not supported".into());
    }
    let mut commands = Vec::new();
    for stage in tokens.split(|token| token == "|") {
        if stage.is_empty() {
            return Err("missing command in pipeline".into());
        }
        let head = &stage[0];
        let starts_operand = head.starts_with(['$', '.', '"', '`'])
            || head.parse::<f64>().is_ok()
            || head == "true"
            || head == "false";
        let command = if starts_operand {
            if stage.len() > 1 {
                return Err(format!("can't give argument to non-function {head}"));
            }
            Command::Value(parse_operand(head)?)
        } else {
            let function =
                Function::named(head).ok_or_else(|| format!("function {head:?} not defined"))?;
            let arguments = stage[1..]
                .iter()
                .map(|token| parse_operand(token))
                .collect::<Result<_, _>>()?;
            Command::Call(function, arguments)
        };
        commands.push(command);
    }
    let piped_into_value = commands
        .iter()
        .skip(1)
        .any(|command| matches!(command, Command::Value(_)));
    if piped_into_value {
        return Err("a pipeline stage after `|` must be a function".into());
    }
    Ok(commands)
}

fn parse_operand(token: &str) -> Result<Operand, String> {
    if let Some(rest) = token.strip_prefix('$') {
        let mut path = rest.split('.');
        let name = path.next().unwrap_or_default().to_owned();
        if !matches!(
            name.as_str(),
            "" | "labels" | "externalLabels" | "externalURL" | "value"
        ) {
            return Err(format!("undefined variable \"${name}\""));
        }
        return Ok(Operand::Variable(name, path.map(str::to_owned).collect()));
    }
    if token == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(rest) = token.strip_prefix('.') {
        return Ok(Operand::Field(rest.split('.').map(str::to_owned).collect()));
    }
    if let Some(raw) = token.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Ok(Operand::Text(raw.to_owned()));
    }
    if token.starts_with('"') {
        return serde_json::from_str::<String>(token)
            .map(Operand::Text)
            .map_err(|_| format!("bad string literal {token}"));
    }
    if token == "true" || token == "false" {
        return Ok(Operand::Bool(token == "true"));
    }
    token
        .parse::<f64>()
        .map(Operand::Number)
        .map_err(|_| format!("unexpected {token:?} in operand"))
}

fn field<'a>(value: Value<'a>, name: &str, data: &TemplateData<'a>) -> Result<Value<'a>, String> {
    match value {
        Value::Map(map) => Ok(map
            .get(name)
            .map_or(Value::Missing, |text| Value::Text(text.clone()))),
        Value::Data => Ok(match name {
            "Labels" => Value::Map(data.labels),
            "ExternalLabels" => Value::Map(data.external_labels),
            "ExternalURL" => Value::Text(data.external_url.to_owned()),
            "Value" => Value::Number(data.value),
            _ => return Err(format!("can't evaluate field {name}")),
        }),
        other => Err(format!("can't evaluate field {name} in {}", other.print())),
    }
}

fn operand_value<'a>(operand: &Operand, data: &TemplateData<'a>) -> Result<Value<'a>, String> {
    let (mut value, path) = match operand {
        Operand::Variable(name, path) => {
            let value = match name.as_str() {
                "" => Value::Data,
                "labels" => Value::Map(data.labels),
                "externalLabels" => Value::Map(data.external_labels),
                "externalURL" => Value::Text(data.external_url.to_owned()),
                "value" => Value::Number(data.value),
                _ => return Err(format!("undefined variable: ${name}")),
            };
            (value, path.as_slice())
        }
        Operand::Field(path) => (Value::Data, path.as_slice()),
        Operand::Text(text) => return Ok(Value::Text(text.clone())),
        Operand::Number(number) => return Ok(Value::Number(*number)),
        Operand::Bool(flag) => return Ok(Value::Bool(*flag)),
    };
    for name in path {
        value = field(value, name, data)?;
    }
    Ok(value)
}

fn run_pipeline<'a>(commands: &[Command], data: &TemplateData<'a>) -> Result<Value<'a>, String> {
    let mut piped: Option<Value<'a>> = None;
    for command in commands {
        piped = Some(match command {
            Command::Value(operand) => operand_value(operand, data)?,
            Command::Call(function, operands) => {
                let mut arguments = operands
                    .iter()
                    .map(|operand| operand_value(operand, data))
                    .collect::<Result<Vec<_>, _>>()?;
                arguments.extend(piped.take());
                call(*function, &arguments)?
            }
        });
    }
    piped.ok_or_else(|| "empty pipeline".into())
}

fn one<'a, 'v>(arguments: &'v [Value<'a>], name: &str) -> Result<&'v Value<'a>, String> {
    match arguments {
        [argument] => Ok(argument),
        _ => Err(format!(
            "wrong number of args for {name}: want 1 got {}",
            arguments.len()
        )),
    }
}

fn text_of(value: &Value) -> String {
    value.print()
}

fn call<'a>(function: Function, arguments: &[Value<'a>]) -> Result<Value<'a>, String> {
    let number = |name: &str| one(arguments, name).and_then(|value| value.number(name));
    Ok(match function {
        Function::Humanize => Value::Text(gofmt::humanize(number("humanize")?)),
        Function::Humanize1024 => Value::Text(gofmt::humanize_1024(number("humanize1024")?)),
        Function::HumanizeDuration => {
            Value::Text(gofmt::humanize_duration(number("humanizeDuration")?))
        }
        Function::HumanizePercentage => {
            Value::Text(gofmt::humanize_percentage(number("humanizePercentage")?))
        }
        Function::HumanizeTimestamp => {
            Value::Text(gofmt::humanize_timestamp(number("humanizeTimestamp")?))
        }
        Function::ToUpper => Value::Text(text_of(one(arguments, "toUpper")?).to_uppercase()),
        Function::ToLower => Value::Text(text_of(one(arguments, "toLower")?).to_lowercase()),
        Function::Title => Value::Text(title_case(&text_of(one(arguments, "title")?))),
        Function::Printf => {
            let (format, rest) = arguments
                .split_first()
                .ok_or("wrong number of args for printf: want at least 1 got 0")?;
            Value::Text(printf(&text_of(format), rest))
        }
        Function::Match => match arguments {
            [pattern, text] => {
                let regex = regex::Regex::new(&text_of(pattern))
                    .map_err(|error| format!("match: {error}"))?;
                Value::Bool(regex.is_match(&text_of(text)))
            }
            _ => {
                return Err(format!(
                    "wrong number of args for match: want 2 got {}",
                    arguments.len()
                ))
            }
        },
        Function::ReReplaceAll => match arguments {
            [pattern, replacement, text] => {
                let regex = regex::Regex::new(&text_of(pattern))
                    .map_err(|error| format!("reReplaceAll: {error}"))?;
                Value::Text(
                    regex
                        .replace_all(&text_of(text), text_of(replacement).as_str())
                        .into_owned(),
                )
            }
            _ => {
                return Err(format!(
                    "wrong number of args for reReplaceAll: want 3 got {}",
                    arguments.len()
                ))
            }
        },
    })
}

fn title_case(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if at_word_start && c.is_alphabetic() {
            output.extend(c.to_uppercase());
        } else {
            output.push(c);
        }
        at_word_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    output
}

/// The largest `printf` precision rendered.
const MAX_PRECISION: usize = 1_000;

/// Go's `fmt.Sprintf` for the verbs annotations use: `%s %v %d %f %e %g %q %%` with width-less
/// precision (`%.2f`); anything else prints as Go does for a bad verb.
fn printf(format: &str, arguments: &[Value]) -> String {
    let mut output = String::new();
    let mut chars = format.chars().peekable();
    let mut next_argument = arguments.iter();
    while let Some(c) = chars.next() {
        if c != '%' {
            output.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(usize::MAX));
        }
        let Some(verb) = chars.next() else {
            output.push_str("%!(NOVERB)");
            break;
        };
        // Go refuses precisions above 1e6; a template must not be able to ask for gigabytes.
        if precision.is_some_and(|digits| digits > MAX_PRECISION) {
            output.push_str("%!(BADPREC)");
            next_argument.next();
            continue;
        }
        if verb == '%' {
            output.push('%');
            continue;
        }
        let Some(argument) = next_argument.next() else {
            output.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match (verb, argument) {
            ('d', Value::Number(n)) if n.fract() == 0.0 => format!("{}", *n as i64),
            ('f' | 'F', Value::Number(n)) => gofmt::format_f(*n, precision.unwrap_or(6)),
            ('e', Value::Number(n)) => gofmt::format_e(*n, precision.unwrap_or(6)),
            ('g', Value::Number(n)) => gofmt::format_g(*n, precision),
            ('v', value) | ('s', value @ (Value::Text(_) | Value::Missing | Value::Map(_))) => {
                value.print()
            }
            ('q', Value::Text(text)) => serde_json::to_string(text).unwrap_or_default(),
            (verb, value) => format!("%!{verb}({})", value.print()),
        };
        output.push_str(&text);
    }
    let extra: Vec<String> = next_argument.map(Value::print).collect();
    if !extra.is_empty() {
        output.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, value: f64) -> String {
        let labels = BTreeMap::from([
            ("instance".to_owned(), "db-1:9100".to_owned()),
            ("job".to_owned(), "node".to_owned()),
        ]);
        let external = BTreeMap::from([("cluster".to_owned(), "eu".to_owned())]);
        let data = TemplateData {
            labels: &labels,
            external_labels: &external,
            external_url: "http://andante:3200",
            value,
        };
        Template::parse(template).expect(template).render(&data)
    }

    #[test]
    fn renders_what_prometheus_renders() {
        let cases = [
            ("plain", "plain"),
            ("{{ $labels.instance }} is down", "db-1:9100 is down"),
            ("{{ .Labels.job }}/{{ $externalLabels.cluster }}", "node/eu"),
            ("{{ $value }}", "1234.5678"),
            ("{{ $value | humanize }}", "1.235k"),
            ("{{ humanize $value }}", "1.235k"),
            ("{{ printf \"%.2f\" $value }}", "1234.57"),
            ("{{ $value | printf \"%.1f\" }}", "1234.6"),
            ("{{ $labels.missing }}", "<no value>"),
            ("a {{- \" b \" -}} c", "a b c"),
            ("x{{/* note */}}y", "xy"),
            ("{{ $labels.job | toUpper }}", "NODE"),
            ("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", "db-1"),
            ("{{ .ExternalURL }}", "http://andante:3200"),
            ("{{ printf \"%.999999999f\" $value }}", "%!(BADPREC)"),
            ("{{ \"0.25\" | humanizePercentage }}", "25%"),
            (
                "{{ $labels.job | humanize }}",
                "<error expanding template: humanize: cannot convert \"node\" to a number>",
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, 1234.5678), expected, "{template}");
        }
    }

    #[test]
    fn refuses_at_parse_what_it_cannot_render() {
        for (template, expected) in [
            ("{{ if $value }}x{{ end }}", "`if` is not supported"),
            ("{{ $value | nosuch }}", "function \"nosuch\" not defined"),
            ("{{ $value ", "unclosed action"),
            ("{{ }}", "missing value"),
            ("{{ $x := 1 }}", "not supported"),
            ("{{ \"open }}", "unterminated string"),
        ] {
            let error = Template::parse(template).unwrap_err();
            assert!(error.contains(expected), "{template}: {error}");
        }
        assert!(Template::parse("{{ $nosuch }}")
            .unwrap_err()
            .contains("undefined variable"));
    }
}
