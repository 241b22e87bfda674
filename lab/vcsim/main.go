// Command vcsim-harness runs govmomi's vCenter simulator (vcsim) with exactly the inventory of a
// lab scenario: one datacenter, ESXi hosts (each in its own compute resource), datastores of a
// given type mounted on the hosts that can reach them, and VMs registered on their host with their
// disks (flat vmdk, vSAN or RDM) on their datastores, their snapshots and their guest OS.
//
// It is written against the govmomi 0.24.2 simulator shipped by Debian
// (golang-github-vmware-govmomi-dev), which has no vcsim main package, and is built with
// GO111MODULE=off GOPATH=/usr/share/gocode by lab/vcenter.py.
//
// Findings about vcsim 0.24.2 that shape this harness:
//
//   - Login: SessionManager.validLogin accepts any non-empty user/password only while
//     Service.Listen.User is nil or the DefaultLogin pointer; any other *url.Userinfo is enforced,
//     so setting Listen.User to the given credentials makes a wrong password fail with
//     InvalidLogin.
//   - Guest tools: CreateVM sets guest.toolsStatus=toolsNotInstalled and
//     guest.toolsRunningStatus=guestToolsNotRunning, and the power tasks only change
//     runtime.powerState; nothing ever reports tools running or guest.guestState, whatever the
//     guest id. The lab's failback verification needs the guest to come up after power-on, so a
//     Registry handler (guestToolsAgent) plays the part of VMware Tools: it follows every
//     runtime.powerState change and updates the guest fields the way a VM with tools installed
//     does on a real vCenter.
//   - Inventory: a Model with every count at zero creates only the ServiceInstance, so there are
//     no default DC0/H0/VM0/LocalDS_0 objects to remove.
//   - Shared datastores: CreateLocalDatastore called on a second host with the same name replaces
//     the Datastore object and duplicates the folder child, so a datastore is created once (on its
//     first host) and then mounted on the other hosts by updating the simulator objects directly.
//   - Hosts not managed by vCenter: a standalone ESXi host has no place in a real vCenter's
//     inventory, but the lab serves every host from one vcsim; the lab's settings name the
//     standalone ones (FAILBACK_VCENTER_STANDALONE_HOSTS, lab/manager.py), not vcsim.
//   - vSAN: a vSAN disk is a flat vmdk whose datastore has summary.type "vsan".
//   - RDM: ReconfigVM_Task/CreateVM_Task accept a VirtualDiskRawDiskMappingVer1BackingInfo, but
//     VirtualMachine.updateDiskLayouts then asserts every disk backing is
//     *VirtualDiskFlatVer2BackingInfo and panics. RDM disks are therefore added to
//     config.hardware.device directly on the simulator object once the VM is created. The same
//     assertion makes every later ReconfigVM_Task, RefreshStorageInfo or CloneVM_Task of a VM with
//     an RDM disk fail in vcsim 0.24.2: the request's handler panics, net/http closes that
//     connection (the client sees it drop) and the harness keeps serving. Power operations,
//     snapshots and reads are unaffected.
//   - Guest OS: CreateVM copies the guest id into config.guestFullName; the harness sets
//     config.guestFullName to the id's descriptive name and guest.guestFullName to the OS version
//     the scenario gives (what VMware Tools would report), e.g. "Windows Server 2008 R2 SP1".
//   - Snapshots: CreateSnapshot_Task works; the VM's snapshot property stays unset (nil) until the
//     first one, which the PropertyCollector reports as an empty value.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/simulator/vpx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type datastoreSpec struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	CapacityGB int64  `json:"capacity_gb"`
}

type hostSpec struct {
	Name       string   `json:"name"`
	Datastores []string `json:"datastores"`
}

type diskSpec struct {
	// Kind is vmdk (flat vmdk), vsan (flat vmdk on a vsan datastore) or rdm (raw device mapping,
	// its mapping file on Datastore).
	Kind string `json:"kind"`
	// Datastore defaults to the VM's datastore.
	Datastore string `json:"datastore"`
	// SizeGB defaults to defaultDiskGB.
	SizeGB int64 `json:"size_gb"`
}

type vmSpec struct {
	Name       string `json:"name"`
	Host       string `json:"host"`
	Datastore  string `json:"datastore"`
	OsType     string `json:"os_type"`
	PowerState string `json:"power_state"`
	// Disks defaults to one vmdk on Datastore when absent; an empty list means no disk.
	Disks          []diskSpec `json:"disks"`
	Snapshots      int        `json:"snapshots"`
	GuestOsVersion string     `json:"guest_os_version"`
}

type inventory struct {
	Datacenter string          `json:"datacenter"`
	Datastores []datastoreSpec `json:"datastores"`
	Hosts      []hostSpec      `json:"hosts"`
	VMs        []vmSpec        `json:"vms"`
}

const (
	gib           = int64(1024 * 1024 * 1024)
	defaultDiskGB = int64(40)
	nfsServer     = "nfs.lab.local"
	toolsVersion  = "12352"
)

func loadInventory(path string) (*inventory, error) {
	raw, err := ioutil.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var inv inventory
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if inv.Datacenter == "" {
		return nil, fmt.Errorf("%s: datacenter is empty", path)
	}
	datastores := map[string]string{}
	for _, ds := range inv.Datastores {
		switch ds.Type {
		case "VMFS", "vsan", "NFS":
		default:
			return nil, fmt.Errorf("%s: datastore %q has type %q, want VMFS, vsan or NFS",
				path, ds.Name, ds.Type)
		}
		datastores[ds.Name] = ds.Type
	}
	hosts := map[string]map[string]bool{}
	for _, h := range inv.Hosts {
		hosts[h.Name] = map[string]bool{}
		for _, name := range h.Datastores {
			if _, ok := datastores[name]; !ok {
				return nil, fmt.Errorf("%s: host %q names unknown datastore %q", path, h.Name, name)
			}
			hosts[h.Name][name] = true
		}
	}
	for i := range inv.VMs {
		vm := &inv.VMs[i]
		reach, ok := hosts[vm.Host]
		if !ok {
			return nil, fmt.Errorf("%s: vm %q names unknown host %q", path, vm.Name, vm.Host)
		}
		if !reach[vm.Datastore] {
			return nil, fmt.Errorf("%s: vm %q: datastore %q is not mounted on host %q",
				path, vm.Name, vm.Datastore, vm.Host)
		}
		if vm.PowerState != "poweredOn" && vm.PowerState != "poweredOff" {
			return nil, fmt.Errorf("%s: vm %q has power_state %q", path, vm.Name, vm.PowerState)
		}
		if vm.Snapshots < 0 {
			return nil, fmt.Errorf("%s: vm %q has %d snapshots", path, vm.Name, vm.Snapshots)
		}
		if vm.Disks == nil {
			vm.Disks = []diskSpec{{Kind: "vmdk"}}
		}
		for j := range vm.Disks {
			if err := checkDisk(&vm.Disks[j], vm, reach, datastores); err != nil {
				return nil, fmt.Errorf("%s: vm %q disk %d: %v", path, vm.Name, j, err)
			}
		}
	}
	return &inv, nil
}

// checkDisk fills in the disk's defaults and checks it can exist on the VM's host.
func checkDisk(disk *diskSpec, vm *vmSpec, reach map[string]bool, dsTypes map[string]string) error {
	if disk.Kind == "" {
		disk.Kind = "vmdk"
	}
	if disk.Datastore == "" {
		disk.Datastore = vm.Datastore
	}
	if disk.SizeGB == 0 {
		disk.SizeGB = defaultDiskGB
	}
	if disk.SizeGB < 0 {
		return fmt.Errorf("size_gb is %d", disk.SizeGB)
	}
	if !reach[disk.Datastore] {
		return fmt.Errorf("datastore %q is not mounted on host %q", disk.Datastore, vm.Host)
	}
	dsType := dsTypes[disk.Datastore]
	switch disk.Kind {
	case "vmdk":
		if dsType == "vsan" {
			return fmt.Errorf("a vmdk disk on vsan datastore %q is a vsan disk", disk.Datastore)
		}
	case "vsan":
		if dsType != "vsan" {
			return fmt.Errorf("a vsan disk needs a vsan datastore, %q is %s", disk.Datastore, dsType)
		}
	case "rdm":
		if dsType != "VMFS" {
			return fmt.Errorf("an RDM's mapping file needs a VMFS datastore, %q is %s",
				disk.Datastore, dsType)
		}
	default:
		return fmt.Errorf("kind %q, want vmdk, vsan or rdm", disk.Kind)
	}
	return nil
}

// guestToolsAgent stands in for VMware Tools inside every simulated guest (see the package
// comment): vcsim 0.24.2 never reports tools running on its own.
type guestToolsAgent struct{}

var agentRef = types.ManagedObjectReference{Type: "LabGuestToolsAgent", Value: "lab-guest-tools"}

func (guestToolsAgent) Reference() types.ManagedObjectReference { return agentRef }

func (guestToolsAgent) PutObject(mo.Reference) {}

func (guestToolsAgent) RemoveObject(types.ManagedObjectReference) {}

func (guestToolsAgent) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if ref.Type != "VirtualMachine" {
		return
	}
	for _, change := range changes {
		if change.Name != "runtime.powerState" {
			continue
		}
		state, ok := change.Val.(types.VirtualMachinePowerState)
		if !ok {
			return
		}
		// Registry.Update hands handlers the bare mo.VirtualMachine; updating through the
		// registered wrapper keeps PropertyCollector/WaitForUpdates listeners informed.
		vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok {
			return
		}
		simulator.Map.Update(vm, guestChanges(state))
		return
	}
}

func guestChanges(state types.VirtualMachinePowerState) []types.PropertyChange {
	running := string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
	status := types.VirtualMachineToolsStatusToolsNotRunning
	guestState := "notRunning"
	if state == types.VirtualMachinePowerStatePoweredOn {
		running = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		status = types.VirtualMachineToolsStatusToolsOk
		guestState = "running"
	}
	return []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: running},
		{Name: "guest.toolsStatus", Val: status},
		{Name: "guest.guestState", Val: guestState},
		{Name: "summary.guest.toolsRunningStatus", Val: running},
		{Name: "summary.guest.toolsStatus", Val: status},
	}
}

// guestOS is the guest id and its descriptive name (config.guestFullName) for a scenario VM.
func guestOS(osType, version string) (string, string) {
	if osType == "Windows" {
		if strings.Contains(version, "2008 R2") {
			return string(types.VirtualMachineGuestOsIdentifierWindows7Server64Guest),
				"Microsoft Windows Server 2008 R2 (64-bit)"
		}
		return string(types.VirtualMachineGuestOsIdentifierWindows9Server64Guest),
			"Microsoft Windows Server 2016 or later (64-bit)"
	}
	return string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest), "Other Linux (64-bit)"
}

type builder struct {
	ctx     context.Context
	client  *vim25.Client
	folders *object.DatacenterFolders
	dataDir string

	hosts      map[string]*object.HostSystem
	datastores map[string]types.ManagedObjectReference
}

func (b *builder) build(inv *inventory) error {
	root := object.NewRootFolder(b.client)
	dc, err := root.CreateDatacenter(b.ctx, inv.Datacenter)
	if err != nil {
		return fmt.Errorf("create datacenter %q: %v", inv.Datacenter, err)
	}
	if b.folders, err = dc.Folders(b.ctx); err != nil {
		return err
	}

	for _, h := range inv.Hosts {
		if err := b.addHost(h.Name); err != nil {
			return err
		}
	}

	for _, ds := range inv.Datastores {
		var mountedOn []string
		for _, h := range inv.Hosts {
			for _, name := range h.Datastores {
				if name == ds.Name {
					mountedOn = append(mountedOn, h.Name)
				}
			}
		}
		if err := b.addDatastore(ds, mountedOn); err != nil {
			return err
		}
	}

	for _, vm := range inv.VMs {
		if err := b.addVM(vm); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) addHost(name string) error {
	task, err := b.folders.HostFolder.AddStandaloneHost(b.ctx, types.HostConnectSpec{HostName: name},
		true, nil, nil)
	if err != nil {
		return fmt.Errorf("add host %q: %v", name, err)
	}
	info, err := task.WaitForResult(b.ctx, nil)
	if err != nil {
		return fmt.Errorf("add host %q: %v", name, err)
	}
	b.hosts[name] = object.NewHostSystem(b.client, info.Result.(types.ManagedObjectReference))
	return nil
}

func (b *builder) addDatastore(spec datastoreSpec, hosts []string) error {
	// A datastore no host can reach does not exist in vCenter's inventory either.
	if len(hosts) == 0 {
		log.Printf("datastore %q is mounted on no host; skipped", spec.Name)
		return nil
	}
	dir := filepath.Join(b.dataDir, spec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	first := b.hosts[hosts[0]]
	dss, err := first.ConfigManager().DatastoreSystem(b.ctx)
	if err != nil {
		return err
	}

	var ds *object.Datastore
	if spec.Type == "NFS" {
		ds, err = dss.CreateNasDatastore(b.ctx, types.HostNasVolumeSpec{
			RemoteHost: nfsServer,
			RemotePath: "/export/" + spec.Name,
			// 0.24.2 names a NAS datastore after the base name of LocalPath.
			LocalPath:  dir,
			AccessMode: string(types.HostMountModeReadWrite),
			Type:       string(types.HostFileSystemVolumeFileSystemTypeNFS),
		})
	} else {
		ds, err = dss.CreateLocalDatastore(b.ctx, spec.Name, dir)
	}
	if err != nil {
		return fmt.Errorf("create datastore %q: %v", spec.Name, err)
	}
	ref := ds.Reference()
	b.datastores[spec.Name] = ref

	sim := simulator.Map.Get(ref).(*simulator.Datastore)
	sim.Summary.Type = spec.Type
	// The simulator reports the size of the temp dir's filesystem; the scenario's size is what
	// placement decisions in the lab should see.
	capacity := spec.CapacityGB * gib
	sim.Summary.Capacity = capacity
	sim.Summary.FreeSpace = capacity
	info := sim.Info.GetDatastoreInfo()
	info.FreeSpace = capacity
	info.MaxFileSize = capacity
	info.MaxMemoryFileSize = capacity

	for i, name := range hosts {
		if i > 0 {
			if err := mountOn(b.hosts[name].Reference(), ref); err != nil {
				return fmt.Errorf("mount datastore %q on %q: %v", spec.Name, name, err)
			}
		}
		addHostMount(sim, b.hosts[name].Reference())
	}
	return nil
}

// mountOn makes an existing datastore visible to one more host: the host's datastore system and
// datastore list, and its compute resource, as HostDatastoreSystem.add does for the first host.
func mountOn(hostRef, dsRef types.ManagedObjectReference) error {
	host, ok := simulator.Map.Get(hostRef).(*simulator.HostSystem)
	if !ok {
		return fmt.Errorf("host %s not in the simulator registry", hostRef)
	}
	dss, ok := simulator.Map.Get(*host.ConfigManager.DatastoreSystem).(*simulator.HostDatastoreSystem)
	if !ok {
		return fmt.Errorf("host %s has no datastore system", hostRef)
	}
	simulator.Map.AddReference(dss, &dss.Datastore, dsRef)
	host.Datastore = dss.Datastore
	if cr, ok := simulator.Map.Get(*host.Parent).(*mo.ComputeResource); ok {
		simulator.Map.AddReference(cr, &cr.Datastore, dsRef)
	}
	return nil
}

func addHostMount(ds *simulator.Datastore, hostRef types.ManagedObjectReference) {
	for i := range ds.Host {
		if ds.Host[i].Key == hostRef {
			// CreateLocalDatastore records the first host's mount without its path.
			if ds.Host[i].MountInfo.Path == "" {
				ds.Host[i].MountInfo.Path = ds.Info.GetDatastoreInfo().Url
			}
			return
		}
	}
	ds.Host = append(ds.Host, types.DatastoreHostMount{
		Key: hostRef,
		MountInfo: types.HostMountInfo{
			Path:       ds.Info.GetDatastoreInfo().Url,
			AccessMode: string(types.HostMountModeReadWrite),
			Mounted:    types.NewBool(true),
			Accessible: types.NewBool(true),
		},
	})
}

func (b *builder) addVM(spec vmSpec) error {
	host := b.hosts[spec.Host]
	pool, err := host.ResourcePool(b.ctx)
	if err != nil {
		return fmt.Errorf("vm %q: resource pool of %q: %v", spec.Name, spec.Host, err)
	}

	guestID, guestName := guestOS(spec.OsType, spec.GuestOsVersion)
	config := types.VirtualMachineConfigSpec{
		Name:     spec.Name,
		GuestId:  guestID,
		NumCPUs:  2,
		MemoryMB: 4096,
		Files: &types.VirtualMachineFileInfo{
			VmPathName: fmt.Sprintf("[%s]", spec.Datastore),
		},
		Tools: &types.ToolsConfigInfo{ToolsVersion: 12352},
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return err
	}
	nic := esx.EthernetCard
	devices = append(devices, scsi, &nic)
	controller := scsi.(types.BaseVirtualController)
	var rdms []rdmDisk
	for i, disk := range spec.Disks {
		label := fmt.Sprintf("Hard disk %d", i+1)
		if disk.Kind == "rdm" {
			// Added after creation, see the package comment; the unit number is kept free.
			rdms = append(rdms, rdmDisk{spec: disk, label: label, index: i})
			continue
		}
		// An empty path makes vcsim create <vm>/<vm>[_n].vmdk on the disk's datastore.
		d := devices.CreateDisk(controller, b.datastores[disk.Datastore], "")
		d.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName = fmt.Sprintf("[%s]", disk.Datastore)
		d.CapacityInKB = disk.SizeGB * gib / 1024
		d.CapacityInBytes = disk.SizeGB * gib
		d.DeviceInfo = &types.Description{Label: label}
		devices = append(devices, d)
	}
	if config.DeviceChange, err = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd); err != nil {
		return err
	}

	task, err := b.folders.VmFolder.CreateVM(b.ctx, config, pool, host)
	if err != nil {
		return fmt.Errorf("create vm %q: %v", spec.Name, err)
	}
	info, err := task.WaitForResult(b.ctx, nil)
	if err != nil {
		return fmt.Errorf("create vm %q: %v", spec.Name, err)
	}
	ref := info.Result.(types.ManagedObjectReference)
	sim := simulator.Map.Get(ref).(*simulator.VirtualMachine)

	for _, rdm := range rdms {
		if err := b.attachRDM(sim, spec, rdm); err != nil {
			return fmt.Errorf("vm %q: %v", spec.Name, err)
		}
	}

	guestFullName := spec.GuestOsVersion
	if guestFullName == "" {
		guestFullName = guestName
	}
	// Tools are installed in every lab guest; they only run once the VM is powered on.
	simulator.Map.Update(sim, append(guestChanges(types.VirtualMachinePowerStatePoweredOff),
		types.PropertyChange{Name: "guest.toolsVersion", Val: toolsVersion},
		types.PropertyChange{Name: "guest.toolsVersionStatus2",
			Val: string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)},
		types.PropertyChange{Name: "guest.guestId", Val: config.GuestId},
		types.PropertyChange{Name: "guest.guestFullName", Val: guestFullName},
		types.PropertyChange{Name: "guest.hostName", Val: spec.Name},
		types.PropertyChange{Name: "config.guestFullName", Val: guestName},
		types.PropertyChange{Name: "summary.config.guestFullName", Val: guestName},
		types.PropertyChange{Name: "summary.guest.guestFullName", Val: guestFullName},
	))

	vm := object.NewVirtualMachine(b.client, ref)
	for i := 1; i <= spec.Snapshots; i++ {
		task, err := vm.CreateSnapshot(b.ctx, fmt.Sprintf("lab-snapshot-%d", i),
			"created by the lab scenario", false, false)
		if err != nil {
			return fmt.Errorf("vm %q: snapshot %d: %v", spec.Name, i, err)
		}
		if err := task.Wait(b.ctx); err != nil {
			return fmt.Errorf("vm %q: snapshot %d: %v", spec.Name, i, err)
		}
	}

	if spec.PowerState == "poweredOn" {
		task, err := vm.PowerOn(b.ctx)
		if err != nil {
			return fmt.Errorf("power on vm %q: %v", spec.Name, err)
		}
		if err := task.Wait(b.ctx); err != nil {
			return fmt.Errorf("power on vm %q: %v", spec.Name, err)
		}
	}
	return nil
}

type rdmDisk struct {
	spec  diskSpec
	label string
	index int
}

// attachRDM adds a raw device mapping disk to a created VM by updating the simulator object (see
// the package comment): a mapping file on the disk's datastore pointing at a LUN whose uuid and
// device name are derived from the VM name and the disk's position, so they are stable.
func (b *builder) attachRDM(sim *simulator.VirtualMachine, spec vmSpec, rdm rdmDisk) error {
	devices := object.VirtualDeviceList(sim.Config.Hardware.Device)
	scsi, err := devices.FindSCSIController("")
	if err != nil {
		return err
	}
	dsRef := b.datastores[rdm.spec.Datastore]
	naa := lunID(spec.Name, rdm.index)
	mapping := fmt.Sprintf("%s/%s_rdm_%d.vmdk", spec.Name, spec.Name, rdm.index)
	// The mapping (pointer) file exists on the datastore, as on a real VMFS volume.
	local := filepath.Join(b.dataDir, rdm.spec.Datastore, filepath.FromSlash(mapping))
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return err
	}
	if err := ioutil.WriteFile(local, nil, 0o600); err != nil {
		return err
	}

	key := int32(2000)
	for devices.FindByKey(key) != nil {
		key++
	}
	disk := &types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{
			Key:        key,
			DeviceInfo: &types.Description{Label: rdm.label, Summary: "Raw device mapping " + naa},
			Backing: &types.VirtualDiskRawDiskMappingVer1BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
					FileName:  fmt.Sprintf("[%s] %s", rdm.spec.Datastore, mapping),
					Datastore: &dsRef,
				},
				LunUuid:           "0200000000" + naa[4:] + "4c554e202020",
				DeviceName:        "/vmfs/devices/disks/" + naa,
				CompatibilityMode: string(types.VirtualDiskCompatibilityModePhysicalMode),
				DiskMode:          string(types.VirtualDiskModeIndependent_persistent),
				Uuid:              lunID(spec.Name+"/uuid", rdm.index)[4:],
			},
		},
		CapacityInKB:    rdm.spec.SizeGB * gib / 1024,
		CapacityInBytes: rdm.spec.SizeGB * gib,
	}
	devices.AssignController(disk, scsi)
	devices = append(devices, disk)

	changes := []types.PropertyChange{
		{Name: "config.hardware.device", Val: []types.BaseVirtualDevice(devices)},
		{Name: "summary.config.numVirtualDisks", Val: sim.Summary.Config.NumVirtualDisks + 1},
	}
	if simulator.FindReference(sim.Datastore, dsRef) == nil {
		changes = append(changes, types.PropertyChange{
			Name: "datastore", Val: append(append([]types.ManagedObjectReference(nil),
				sim.Datastore...), dsRef)})
	}
	simulator.Map.Update(sim, changes)
	return nil
}

// lunID is an NAA identifier (naa.6 + 31 hex digits) derived from a name and an index.
func lunID(name string, index int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", name, index)))
	return "naa.6" + hex.EncodeToString(sum[:])[:31]
}

func writeReadyFile(path, content string) error {
	tmp := path + ".tmp"
	if err := ioutil.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	inventoryPath := flag.String("inventory", "", "inventory JSON file (written by lab/vcenter.py)")
	listen := flag.String("listen", "127.0.0.1:8989", "host:port to serve the SDK on (HTTPS)")
	username := flag.String("username", "user", "the only user name accepted by Login")
	password := flag.String("password", "pass", "the only password accepted by Login")
	readyFile := flag.String("ready-file", "", "written with the SDK URL once the inventory is built")
	flag.Parse()

	log.SetPrefix("vcsim-harness: ")
	if *inventoryPath == "" || *username == "" || *password == "" {
		log.Fatal("-inventory, -username and -password are required")
	}
	inv, err := loadInventory(*inventoryPath)
	if err != nil {
		log.Fatal(err)
	}

	dataDir, err := ioutil.TempDir("", "vcsim-harness-")
	if err != nil {
		log.Fatal(err)
	}
	// log.Fatal skips deferred calls, so every exit after this point goes through fail().
	fail := func(format string, args ...interface{}) {
		_ = os.RemoveAll(dataDir)
		log.Fatalf(format, args...)
	}

	model := &simulator.Model{ServiceContent: vpx.ServiceContent, RootFolder: vpx.RootFolder}
	if err := model.Create(); err != nil {
		fail("create model: %v", err)
	}
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	simulator.Map.AddHandler(guestToolsAgent{})

	server := model.Service.NewServer()

	ctx := context.Background()
	// server.URL carries the configured credentials, so this login also proves they work.
	client, err := govmomi.NewClient(ctx, server.URL, true)
	if err != nil {
		server.Close()
		fail("login to the simulator: %v", err)
	}
	b := &builder{
		ctx:        ctx,
		client:     client.Client,
		dataDir:    dataDir,
		hosts:      map[string]*object.HostSystem{},
		datastores: map[string]types.ManagedObjectReference{},
	}
	if err := b.build(inv); err != nil {
		server.Close()
		fail("build inventory: %v", err)
	}
	_ = client.Logout(ctx)

	sdk := url.URL{Scheme: "https", Host: server.URL.Host, Path: server.URL.Path}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	if *readyFile != "" {
		if err := writeReadyFile(*readyFile, sdk.String()); err != nil {
			server.Close()
			fail("write ready file: %v", err)
		}
	}
	log.Printf("serving %s: datacenter %q, %d host(s), %d datastore(s), %d vm(s)",
		sdk.String(), inv.Datacenter, len(inv.Hosts), len(inv.Datastores), len(inv.VMs))

	sig := <-signals
	log.Printf("%s: shutting down", sig)
	server.Close()
	model.Remove()
	_ = os.RemoveAll(dataDir)
}
