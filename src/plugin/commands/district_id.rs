//! `kubectl roster district-id LINK`: the Clever district id from a whole instant login link (or
//! the id itself), checked, to paste into `districtId` (the district chart takes the link too).
pub(super) fn district_id(input: &str) -> anyhow::Result<u8> {
    let id = crate::api::district_id_from(input).map_err(anyhow::Error::msg)?;
    println!("{id}");
    Ok(0)
}
