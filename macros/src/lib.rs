//! Procedural macros for `livesync`: `#[derive(Row)]`, re-exported as `livesync::Row`.
//! See that re-export for the documentation.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// Implements `livesync::FromRow` for a struct with named fields (columns matched by
/// name, resolved once per statement). Attributes: `#[row(table = "...")]` on the
/// struct; `#[row(rename = "...")]`, `#[row(default)]`, `#[row(json)]` on fields.
#[proc_macro_derive(Row, attributes(row))]
pub fn derive_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[row(...)]` says about one field.
struct FieldOptions {
    column: String,
    default: bool,
    json: bool,
}

fn field_options(field: &syn::Field) -> syn::Result<FieldOptions> {
    let ident = field.ident.as_ref().expect("named field");
    let mut options = FieldOptions {
        column: ident.to_string().trim_start_matches("r#").to_owned(),
        default: false,
        json: false,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("row")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                options.column = meta.value()?.parse::<LitStr>()?.value();
            } else if meta.path.is_ident("default") {
                options.default = true;
            } else if meta.path.is_ident("json") {
                options.json = true;
            } else {
                return Err(meta.error(
                    "unknown #[row] field option; expected `rename = \"...\"`, `default` or `json`",
                ));
            }
            Ok(())
        })?;
    }
    Ok(options)
}

fn table_name(input: &DeriveInput) -> syn::Result<Option<String>> {
    let mut table = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("row")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table = Some(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else {
                Err(meta.error("unknown #[row] option on a struct; expected `table = \"...\"`"))
            }
        })?;
    }
    Ok(table)
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => &fields.named,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[derive(Row)] needs a struct with named fields (columns are matched by field name); tuples already decode columns by position",
                ));
            }
        },
        Data::Enum(data) => {
            return Err(syn::Error::new(
                data.enum_token.span(),
                "#[derive(Row)] supports structs with named fields, not enums",
            ));
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span(),
                "#[derive(Row)] supports structs with named fields, not unions",
            ));
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Row)] does not support generic structs: rows are decoded into concrete types; wrap the generic part in a concrete struct",
        ));
    }
    let table = table_name(input)?;

    let count = fields.len();
    let mut resolve = Vec::with_capacity(count);
    let mut decode = Vec::with_capacity(count);
    let mut table_columns = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        let options = field_options(field)?;
        let ident = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
        let column = &options.column;
        resolve.push(if options.default {
            quote! { ::livesync::__private::column_index(names, #column) }
        } else {
            quote! { ::core::option::Option::Some(::livesync::__private::require_column(names, #column)?) }
        });
        let decode_one = if options.json {
            quote! { ::livesync::__private::decode_json_column::<#ty, R>(row, index, #column)? }
        } else {
            quote! { ::livesync::__private::decode_column::<#ty, R>(row, index, #column)? }
        };
        let missing = if options.default {
            quote! { ::core::default::Default::default() }
        } else {
            quote! { return ::core::result::Result::Err(::livesync::__private::missing_column(#column)) }
        };
        decode.push(quote! {
            #ident: match columns[#index] {
                ::core::option::Option::Some(index) => #decode_one,
                ::core::option::Option::None => #missing,
            }
        });
        if !column.eq_ignore_ascii_case("id") {
            let column_type = if options.json {
                quote! { ::livesync::ColumnType::Text }
            } else {
                quote! { <#ty as ::livesync::ColumnValue>::COLUMN_TYPE }
            };
            table_columns.push(quote! { ::livesync::Column::new(#column, #column_type) });
        }
    }

    let table_fn = table.map(|table| {
        let doc = format!(
            "The `{table}` table of a schema, with one column per field (`id` is implicit)."
        );
        quote! {
            impl #name {
                #[doc = #doc]
                pub fn table() -> ::livesync::Table {
                    ::livesync::Table::new(#table, [#(#table_columns),*])
                }
            }
        }
    });

    Ok(quote! {
        impl ::livesync::FromRow for #name {
            type Columns = [::core::option::Option<usize>; #count];

            fn resolve(names: &[::std::string::String]) -> ::livesync::Result<Self::Columns> {
                ::core::result::Result::Ok([#(#resolve),*])
            }

            fn from_row<R: ::livesync::RowValues + ?Sized>(
                row: &R,
                columns: &Self::Columns,
            ) -> ::livesync::Result<Self> {
                ::core::result::Result::Ok(Self { #(#decode),* })
            }
        }
        #table_fn
    })
}
