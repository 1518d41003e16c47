//! Reading OTLP attributes as the label values the processors need.

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};

/// An attribute value as a label value: strings as they are, numbers and booleans in their
/// usual text form; arrays, maps and bytes have no label form and count as absent.
pub fn label_value(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(text) => text.clone(),
        any_value::Value::IntValue(number) => number.to_string(),
        any_value::Value::DoubleValue(number) => number.to_string(),
        any_value::Value::BoolValue(flag) => flag.to_string(),
        _ => return None,
    })
}

pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

pub fn find_string(attributes: &[KeyValue], key: &str) -> Option<String> {
    find(attributes, key)
        .and_then(label_value)
        .filter(|v| !v.is_empty())
}

/// The first of `keys` found on the span, then on its resource.
pub fn first_of(span: &[KeyValue], resource: &[KeyValue], keys: &[String]) -> Option<String> {
    keys.iter()
        .find_map(|key| find_string(span, key).or_else(|| find_string(resource, key)))
}

pub fn as_f64(value: &AnyValue) -> Option<f64> {
    match value.value.as_ref()? {
        any_value::Value::IntValue(number) => Some(*number as f64),
        any_value::Value::DoubleValue(number) => Some(*number),
        any_value::Value::StringValue(text) => text.parse().ok(),
        _ => None,
    }
}
