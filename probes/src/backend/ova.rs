//! Test payloads for image upload: deterministic pseudo-random disk bytes,
//! and an OVA (DMTF DSP0243): a ustar archive whose first member is the OVF
//! descriptor, followed by the disk it references. Clouds that import
//! appliances (Glance `ova`, EC2 ImportImage) take the same package.
//! The probe streams it ([`super::payload::Payload::ova`]); the whole-buffer
//! forms here are the reference the stream is tested against.

/// `len` deterministic pseudo-random bytes (xorshift64*), the same every run.
pub fn disk_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    // No MBR boot signature: format inspectors must not take it for a partitioned disk.
    if len >= 512 && out[510] == 0x55 && out[511] == 0xAA {
        out[511] = 0;
    }
    out
}

pub const OVF_NAME: &str = "fedprobe.ovf";
pub const DISK_NAME: &str = "fedprobe-disk1.img";

/// The OVF descriptor for one raw disk of `disk_len` bytes.
pub fn ovf_descriptor(disk_len: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
          xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{DISK_NAME}" ovf:size="{disk_len}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk of the fedprobe upload test</Info>
    <Disk ovf:diskId="disk1" ovf:fileRef="file1" ovf:capacity="{disk_len}" ovf:capacityAllocationUnits="byte" ovf:format="urn:fedprobe:disk-format:raw"/>
  </DiskSection>
  <VirtualSystem ovf:id="fedprobe">
    <Info>fedprobe image upload test appliance (not bootable)</Info>
    <Name>fedprobe</Name>
    <OperatingSystemSection ovf:id="0">
      <Info>No operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>512 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>512</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/disk1</rasd:HostResource>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// An OVA holding the descriptor and `disk`.
pub fn ova(disk: &[u8]) -> Vec<u8> {
    let ovf = ovf_descriptor(disk.len() as u64);
    let mut out = Vec::with_capacity(disk.len() + ovf.len() + 4096);
    tar_member(&mut out, OVF_NAME, ovf.as_bytes());
    tar_member(&mut out, DISK_NAME, disk);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// One ustar member: header block, data, zero padding to 512.
fn tar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(&tar_header(name, data.len() as u64));
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, padding(data.len() as u64)));
}

/// Zero bytes after a member of `len` bytes, up to the next 512 boundary.
pub fn padding(len: u64) -> usize {
    ((512 - len % 512) % 512) as usize
}

/// The ustar header block of a member of `len` bytes (up to 8 GiB - 1 in
/// the octal field; larger disks use the base-256 form GNU tar reads).
pub fn tar_header(name: &str, len: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    put(&mut h[0..100], name.as_bytes());
    put(&mut h[100..108], b"0000644\0");
    put(&mut h[108..116], b"0000000\0");
    put(&mut h[116..124], b"0000000\0");
    if len < 1 << 33 {
        put(&mut h[124..136], format!("{len:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&len.to_be_bytes());
    }
    put(&mut h[136..148], b"00000000000\0");
    h[156] = b'0';
    put(&mut h[257..263], b"ustar\0");
    put(&mut h[263..265], b"00");
    // Checksum: header bytes summed with the checksum field as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
    h
}

fn put(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_bytes_are_deterministic() {
        let a = disk_bytes(4096);
        assert_eq!(a, disk_bytes(4096));
        assert_eq!(a.len(), 4096);
        assert_eq!(&disk_bytes(100)[..], &a[..100]);
        // not constant
        assert!(a.iter().filter(|b| **b == a[0]).count() < 100);
    }

    #[test]
    fn ova_layout_is_ustar() {
        let disk = disk_bytes(1000);
        let t = ova(&disk);
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[0..OVF_NAME.len()], OVF_NAME.as_bytes());
        assert_eq!(&t[257..262], b"ustar");
        // header checksum verifies
        let mut h = t[0..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].fill(b' ');
        assert_eq!(stored, h.iter().map(|b| *b as u32).sum::<u32>());
        let ovf_len = ovf_descriptor(1000).len();
        let second = 512 + ovf_len.div_ceil(512) * 512;
        assert_eq!(&t[second..second + DISK_NAME.len()], DISK_NAME.as_bytes());
        assert_eq!(&t[second + 512..second + 512 + 1000], &disk[..]);
        let size = std::str::from_utf8(&t[second + 124..second + 135]).unwrap();
        assert_eq!(usize::from_str_radix(size, 8).unwrap(), 1000);
    }

    #[test]
    fn disks_of_8_gib_and_more_use_the_base_256_size() {
        let h = tar_header(DISK_NAME, 10 << 30);
        assert_eq!(h[124], 0x80);
        assert_eq!(
            u64::from_be_bytes(h[128..136].try_into().unwrap()),
            10 << 30
        );
        let mut c = h;
        let stored = u32::from_str_radix(std::str::from_utf8(&c[148..154]).unwrap(), 8).unwrap();
        c[148..156].fill(b' ');
        assert_eq!(stored, c.iter().map(|b| *b as u32).sum::<u32>());
        // Below 8 GiB: the octal field.
        let h = tar_header(DISK_NAME, (8 << 30) - 1);
        assert_eq!(&h[124..136], b"77777777777\0");
    }
}
