"""What the synthetic kernel built, and where: the facts synth turns into the dump writer's input
and into truth.json."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..pagetables import AddressSpace
from ..scenario import ProcessSpec, RegionSpec

@dataclass
class BuiltRegion:
    spec: RegionSpec
    vad: int  # address of the VAD node
    tag: str
    pfns: list[int] | range  # frame of each page, in address order (a range for bulk runs)


@dataclass
class BuiltProcess:
    spec: ProcessSpec
    eprocess: int
    physical: int
    dtb: int
    space: AddressSpace | None
    secure_word: int  # SecureState word (1709+) or SecurePid (older); 0 when not secure
    secure: bool
    secure_handle: int
    trustlet_id: int | None
    flags: dict[str, bool | None]
    audit_name: str | None = None  # SeAuditProcessCreationInfo.ImageFileName; None: no pointer
    regions: list[BuiltRegion] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    peb: int = 0


@dataclass
class KernelBuild:
    """What the synthetic kernel put where; synth turns it into writer facts and truth."""

    build: int
    revision: int
    guid: str
    age: int
    base: int
    image_size: int
    dtb: int
    self_map_index: int
    kdbg: int
    version_block: int
    ps_active_process_head: int
    ps_loaded_module_list: int
    pfn_database: int
    number_processors: int
    system_time: int
    machine_type: int
    object_header_cookie: int
    has_secure_state: bool
    has_trustlet_identity: bool
    processes: list[BuiltProcess]
    secure_kernel_frames: tuple[int, int] | None  # [start, end) claimed by VTL1
    kernel_pages: int = 0
    pool_large_pages: int = 0



__all__ = ["BuiltProcess", "BuiltRegion", "KernelBuild"]
