//! Prints the REST API's OpenAPI document (what `mgmt/openapi.json` holds).

fn main() {
    let doc = mgmt::api::document();
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
}
