/* The Windows structures iumdump defines with construct, declared in C for the layout oracle
 * (tests/structs/test_layout_oracle.py): clang lays them out with the MSVC record layout for
 * --target=x86_64-pc-windows-msvc and i686-pc-windows-msvc, and the test compares every offset,
 * bit position and size with the construct definitions.
 * Declarations follow Microsoft Learn (NtQueryInformationProcess, ProcessBasicInformation; the
 * WDK's PS_PROTECTION) and the field names of phnt's ntpsapi.h; typedefs are the Windows SDK's. */

typedef unsigned char UCHAR;
typedef long LONG;
typedef unsigned long ULONG;
#ifdef _WIN64
typedef unsigned __int64 ULONG_PTR;
#else
typedef unsigned long ULONG_PTR;
#endif
typedef ULONG_PTR SIZE_T;
typedef ULONG_PTR KAFFINITY;
typedef LONG NTSTATUS;
typedef LONG KPRIORITY;
typedef struct _PEB *PPEB;

typedef struct _PROCESS_BASIC_INFORMATION {
    NTSTATUS ExitStatus;
    PPEB PebBaseAddress;
    KAFFINITY AffinityMask;
    KPRIORITY BasePriority;
    ULONG_PTR UniqueProcessId;
    ULONG_PTR InheritedFromUniqueProcessId;
} PROCESS_BASIC_INFORMATION;

typedef struct _PROCESS_EXTENDED_BASIC_INFORMATION {
    SIZE_T Size;
    PROCESS_BASIC_INFORMATION BasicInfo;
    union {
        ULONG Flags;
        struct {
            ULONG IsProtectedProcess : 1;
            ULONG IsWow64Process : 1;
            ULONG IsProcessDeleting : 1;
            ULONG IsCrossSessionCreate : 1;
            ULONG IsFrozen : 1;
            ULONG IsBackground : 1;
            ULONG IsStronglyNamed : 1;
            ULONG IsSecureProcess : 1;
            ULONG IsSubsystemProcess : 1;
            ULONG IsTrustedApp : 1;
            ULONG SpareBits : 22;
        };
    };
} PROCESS_EXTENDED_BASIC_INFORMATION;

typedef struct _PS_PROTECTION {
    union {
        UCHAR Level;
        struct {
            UCHAR Type : 3;
            UCHAR Audit : 1;
            UCHAR Signer : 4;
        };
    };
} PS_PROTECTION;

/* winnt.h; PE/COFF specification section 6.3.1 (Export Directory Table). */
typedef unsigned short USHORT;
typedef struct _IMAGE_EXPORT_DIRECTORY {
    ULONG Characteristics;
    ULONG TimeDateStamp;
    USHORT MajorVersion;
    USHORT MinorVersion;
    ULONG Name;
    ULONG Base;
    ULONG NumberOfFunctions;
    ULONG NumberOfNames;
    ULONG AddressOfFunctions;
    ULONG AddressOfNames;
    ULONG AddressOfNameOrdinals;
} IMAGE_EXPORT_DIRECTORY;

/* clang dumps the layout of records that are laid out; sizeof forces each one. */
extern char force_pbi[sizeof(PROCESS_BASIC_INFORMATION)];
extern char force_pebi[sizeof(PROCESS_EXTENDED_BASIC_INFORMATION)];
extern char force_ps_protection[sizeof(PS_PROTECTION)];
extern char force_image_export_directory[sizeof(IMAGE_EXPORT_DIRECTORY)];
