# What a real machine adds to an example host: disks, boot loader, release.
# Only the flake's nixosConfigurations import it; the VM tests bring their
# own virtual machine, and the offline evaluation needs none of it.
{
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  boot.loader.grub.device = "/dev/vda";
  system.stateVersion = "25.11";
}
