"""Fixed addresses of the Windows x64 address space, declared once for the analyzer and the
emulator.

KUSER_SHARED_DATA is the one page the kernel maps at the same addresses on every x64 Windows:
ntddk.h/wdm.h ``KI_USER_SHARED_DATA`` (the kernel's view) and ``MM_SHARED_USER_DATA_VA`` (where
every user process, trustlets included, sees the same frame read-only). The same values are in
Microsoft's Windows metadata (windows-sys ``Wdk::System::SystemServices::KI_USER_SHARED_DATA``)
and in ntapi's ``USER_SHARED_DATA``.
"""

KI_USER_SHARED_DATA = 0xFFFFF78000000000  # x64; 0xFFDF0000 on x86
MM_SHARED_USER_DATA_VA = 0x7FFE0000
