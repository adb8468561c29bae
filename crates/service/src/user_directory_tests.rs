//! Unit tests of the User directory: the file's parsing and the API edits laid over it.
use super::*;

const FIREWALLED: &str = "90-B3-D5-1F-30-01-00-07";
const LAB: &str = "4C-E1-73-00-00-00-11-01";

fn user(text: &str) -> Eui64 {
    Eui64::parse(text).unwrap()
}

#[test]
fn reads_ids_skips_comments_and_names_a_bad_line() {
    let users =
        parse("# Users of the pilot\n90-B3-D5-1F-30-01-00-07\n\n4CE1730000001101 # lab\n").unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[1].name, "");
    assert_eq!(
        parse("90-B3-D5-1F-30-01-00-07\nnot-a-user\n"),
        Err(Problem::NotUser(2, "not-a-user".to_owned()))
    );
}

#[test]
fn reads_names_and_roles_from_csv_with_a_header_and_quoted_commas() {
    let entries = parse(&format!(
        "user,name,role\n{FIREWALLED},\"Acme Energy, Ltd\",supplier\n{LAB},Northern Grid,Network operator\n"
    ))
    .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].name, "Acme Energy, Ltd");
    assert_eq!(entries[0].role, Some(PartyRole::Supplier));
    assert_eq!(entries[1].role, Some(PartyRole::NetworkOperator));
    assert_eq!(
        entries[0].label().as_deref(),
        Some("Acme Energy, Ltd (supplier)")
    );
}

#[test]
fn reads_json_and_refuses_an_unknown_role_or_a_control_character() {
    let entries = parse(&format!(
        r#"[{{"user": "{FIREWALLED}", "name": "Acme Energy", "role": "supplier"}}, {{"user": "{LAB}"}}]"#
    ))
    .unwrap();
    assert_eq!(entries[0].name, "Acme Energy");
    assert_eq!(entries[1].role, None);
    let Err(Problem::Entry(2, why)) = parse(&format!("{LAB},Lab\n{FIREWALLED},Acme,retailer\n"))
    else {
        panic!("an unknown role is refused with its line");
    };
    assert!(why.contains("`retailer`"), "{why}");
    assert!(
        parse(&format!(r#"[{{"user": "{LAB}", "name": "a\nb"}}]"#)).is_err(),
        "a line feed would break a metric label or a header"
    );
}

#[test]
fn edits_overlay_the_file_and_the_allow_list_follows_them() {
    let file = parse(&format!("{FIREWALLED},Acme,supplier\n")).unwrap();
    let names = Names::new(Directory::new(Some(file), vec![]));
    assert_eq!(names.label(FIREWALLED).as_deref(), Some("Acme (supplier)"));
    let allowed = names.set(user(FIREWALLED), None).unwrap();
    assert!(
        allowed.is_empty(),
        "a deleted file entry is no longer let in"
    );
    assert_eq!(names.lookup(FIREWALLED), None);
    let lab = checked(user(LAB), "Lab \"North\"", Some(PartyRole::OtherUser)).unwrap();
    let allowed = names.set(user(LAB), Some(lab)).unwrap();
    assert!(allowed.contains(&user(LAB)));
    assert!(
        names
            .info_metric()
            .contains(r#"stormwatch_user_info{user="4C-E1-73-00-00-00-11-01",name="Lab \"North\"",role="other_user"} 1"#),
        "{}",
        names.info_metric()
    );
}

#[test]
fn without_a_file_the_directory_names_users_but_refuses_none() {
    let names = Names::new(Directory::new(None, vec![]));
    let entry = checked(user(LAB), "Lab", None).unwrap();
    assert_eq!(names.set(user(LAB), Some(entry)), None);
    assert_eq!(names.label(LAB).as_deref(), Some("Lab"));
    assert_eq!(names.label("*"), None);
}
