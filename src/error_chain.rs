//! An error and its causes as one line, each cause once: the CLI prints it, and error types
//! whose own text quotes their cause (so that `to_string()` alone says what happened) keep
//! that cause as their `source()` too.

use std::error::Error;

/// A boxed cause, as error variants keep it.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// `e` and its sources joined by ": ", each once: a wrapper that already quotes its cause
/// (or the whole rest of the chain) does not repeat it.
pub fn render(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// `context`, then the rendered cause after ": " when there is one.
pub fn with_cause(context: &str, cause: Option<&BoxError>) -> String {
    match cause {
        Some(c) => format!("{context}: {}", render(c.as_ref())),
        None => context.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn cause_chains_name_every_cause_once() {
        let inner = Layer("invalid peer certificate: UnknownIssuer", None);
        let middle = Layer("client error (Connect)", Some(Box::new(inner)));
        let outer = Layer("error sending request", Some(Box::new(middle)));
        assert_eq!(
            render(&outer),
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        // A wrapper that already quotes its cause does not repeat it.
        let quoted = Layer(
            "tls: invalid peer certificate: UnknownIssuer",
            Some(Box::new(Layer(
                "invalid peer certificate: UnknownIssuer",
                None,
            ))),
        );
        assert_eq!(
            render(&quoted),
            "tls: invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn a_wrapper_quoting_its_whole_chain_is_printed_once() {
        let inner = Layer("Connection refused", None);
        let middle = Layer("client error (Connect)", Some(Box::new(inner)));
        let outer = Layer(
            "cannot reach the vault: client error (Connect): Connection refused",
            Some(Box::new(middle)),
        );
        assert_eq!(
            render(&outer),
            "cannot reach the vault: client error (Connect): Connection refused"
        );
    }
}
