"""SOP class lists the stand-in takes from XNAT's source.

PRIMARY_SOP_CLASSES decides which scan resource an instance is catalogued under when a session is
built: "DICOM" for a primary imaging SOP class, "secondary" for every other one (dicom-xnat's
CatalogBuilder.call via SOPModel.isPrimaryImagingSOP, which reads primary-sops.txt; the site
preference separateSecondaryDicomOnArchive, default on, turns the split off when false).
dicom-xnat is not in the XNAT 1.8 monorepo fetched for this project: the classes below are the
ones /work/shared/XNAT-API.md lists (Secondary Capture, X-Ray Radiation Dose SR, Comprehensive
SR, Key Object Selection, Presentation States, RT Structure Set, RT Plan, Encapsulated PDF and any
unlisted or private class are secondary; CT/MR/PET/US/NM/CR/DX/MG/XA/RF, Enhanced CT/MR/PET, RT
Dose, RT Image, Basic Text SR and Enhanced SR are primary), filled in from a public copy of
dicom-xnat-sop's primary-sops.txt (NrgXnat/xnat at ba8c58d, a later monorepo that holds it). The
names there are turned into UIDs by dcm4che's UID.forName; the UIDs below are the standard ones
for those names. Not confirmed against the dicom-xnat build that XNAT 1.8 ships.

RECEIVER_SOP_CLASSES and RECEIVER_TRANSFER_SYNTAXES are what XNAT's DICOM receiver offers in
association negotiation (web/.../dcm/scp/CStoreService.CUIDS and DicomSCP.TSUIDS, XNAT 1.8): a
SOP class not on the list is refused there, before any data is sent.
"""

# name (primary-sops.txt) -> UID
PRIMARY_SOP_NAMES = {
    "AmbulatoryECGWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.1.3",
    "BasicTextSRStorage": "1.2.840.10008.5.1.4.1.1.88.11",
    "CTImageStorage": "1.2.840.10008.5.1.4.1.1.2",
    "CardiacElectrophysiologyWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.3.1",
    "ComputedRadiographyImageStorage": "1.2.840.10008.5.1.4.1.1.1",
    "DigitalIntraOralXRayImageStorageForPresentation": "1.2.840.10008.5.1.4.1.1.1.3",
    "DigitalIntraOralXRayImageStorageForProcessing": "1.2.840.10008.5.1.4.1.1.1.3.1",
    "DigitalMammographyXRayImageStorageForPresentation": "1.2.840.10008.5.1.4.1.1.1.2",
    "DigitalMammographyXRayImageStorageForProcessing": "1.2.840.10008.5.1.4.1.1.1.2.1",
    "BreastTomosynthesisImageStorage": "1.2.840.10008.5.1.4.1.1.13.1.3",
    "DigitalXRayImageStorageForPresentation": "1.2.840.10008.5.1.4.1.1.1.1",
    "DigitalXRayImageStorageForProcessing": "1.2.840.10008.5.1.4.1.1.1.1.1",
    "EnhancedCTImageStorage": "1.2.840.10008.5.1.4.1.1.2.1",
    "EnhancedMRImageStorage": "1.2.840.10008.5.1.4.1.1.4.1",
    "EnhancedPETImageStorage": "1.2.840.10008.5.1.4.1.1.130",
    "EnhancedSRStorage": "1.2.840.10008.5.1.4.1.1.88.22",
    "HemodynamicWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.2.1",
    "MRImageStorage": "1.2.840.10008.5.1.4.1.1.4",
    "NuclearMedicineImageStorage": "1.2.840.10008.5.1.4.1.1.20",
    "OphthalmicPhotography16BitImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.5.2",
    "OphthalmicPhotography8BitImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.5.1",
    "OphthalmicTomographyImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.5.4",
    "PositronEmissionTomographyImageStorage": "1.2.840.10008.5.1.4.1.1.128",
    "RTDoseStorage": "1.2.840.10008.5.1.4.1.1.481.2",
    "RTImageStorage": "1.2.840.10008.5.1.4.1.1.481.1",
    "UltrasoundImageStorage": "1.2.840.10008.5.1.4.1.1.6.1",
    "UltrasoundMultiFrameImageStorage": "1.2.840.10008.5.1.4.1.1.3.1",
    "VideoEndoscopicImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.1.1",
    "VideoMicroscopicImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.2.1",
    "VideoPhotographicImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.4.1",
    "XRay3DCraniofacialImageStorage": "1.2.840.10008.5.1.4.1.1.13.1.2",
    "XRayAngiographicImageStorage": "1.2.840.10008.5.1.4.1.1.12.1",
    "XRay3DAngiographicImageStorage": "1.2.840.10008.5.1.4.1.1.13.1.1",
    "XRayRadiofluoroscopicImageStorage": "1.2.840.10008.5.1.4.1.1.12.2",
    "TwelveLeadECGWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.1.1",
    "VLWholeSlideMicroscopyImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.6",
    "VLMicroscopicImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.2",
    "DermoscopyImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.7",
    "ConfocalMicroscopyImageStorage": "1.2.840.10008.5.1.4.1.1.77.1.8",
    "PhotoacousticImageStorage": "1.2.840.10008.5.1.4.1.1.6.3",
    "MicroscopyBulkSimpleAnnotationStorage": "1.2.840.10008.5.1.4.1.1.91.1",
    "ElectromyogramWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.7.2",
    "ElectroocularWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.7.3",
    "RespiratoryWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.6.1",
    "BodyPositionWaveformStorage": "1.2.840.10008.5.1.4.1.1.9.8.1",
    "EncapsulatedObjStorage": "1.2.840.10008.5.1.4.1.1.104.4",
    "MaterialLibraryStorage": "1.2.840.10008.5.1.4.1.1.104.5",
}
PRIMARY_SOP_CLASSES = frozenset(PRIMARY_SOP_NAMES.values())

RESOURCE_DICOM = "DICOM"          # CatalogBuilder.RESOURCE_LABEL_DICOM, content RAW
RESOURCE_SECONDARY = "secondary"  # CatalogBuilder.RESOURCE_LABEL_SECONDARY, content "secondary"


def resource_label(sop_class, separate_secondary=True):
    """The scan resource an instance is catalogued under (CatalogBuilder.call)."""
    if not separate_secondary or sop_class in PRIMARY_SOP_CLASSES:
        return RESOURCE_DICOM
    return RESOURCE_SECONDARY


def resource_content(label):
    return "RAW" if label == RESOURCE_DICOM else "secondary"


# CStoreService.CUIDS (XNAT 1.8), as UIDs, in the source's order.
RECEIVER_SOP_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.840.10008.5.1.4.1.1.1.3",
    "1.2.840.10008.5.1.4.1.1.1.3.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",
    "1.2.840.10008.5.1.4.1.1.4.2", "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.840.10008.5.1.4.1.1.9.1.2",
    "1.2.840.10008.5.1.4.1.1.9.1.3", "1.2.840.10008.5.1.4.1.1.9.2.1",
    "1.2.840.10008.5.1.4.1.1.9.3.1", "1.2.840.10008.5.1.4.1.1.9.4.1",
    "1.2.840.10008.5.1.4.1.1.11.1", "1.2.840.10008.5.1.4.1.1.11.2", "1.2.840.10008.5.1.4.1.1.11.3",
    "1.2.840.10008.5.1.4.1.1.11.4", "1.2.840.10008.5.1.4.1.1.12.1",
    "1.2.840.10008.5.1.4.1.1.12.1.1", "1.2.840.10008.5.1.4.1.1.12.2",
    "1.2.840.10008.5.1.4.1.1.12.2.1", "1.2.840.10008.5.1.4.1.1.13.1.1",
    "1.2.840.10008.5.1.4.1.1.13.1.2", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.66",
    "1.2.840.10008.5.1.4.1.1.66.1", "1.2.840.10008.5.1.4.1.1.66.2", "1.2.840.10008.5.1.4.1.1.66.3",
    "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.67", "1.2.840.10008.5.1.4.1.1.77.1.1",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.840.10008.5.1.4.1.1.77.1.2",
    "1.2.840.10008.5.1.4.1.1.77.1.2.1", "1.2.840.10008.5.1.4.1.1.77.1.3",
    "1.2.840.10008.5.1.4.1.1.77.1.4", "1.2.840.10008.5.1.4.1.1.77.1.4.1",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1", "1.2.840.10008.5.1.4.1.1.77.1.5.2",
    "1.2.840.10008.5.1.4.1.1.77.1.5.4", "1.2.840.10008.5.1.4.1.1.77.1.5.3",
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.40",
    "1.2.840.10008.5.1.4.1.1.88.50", "1.2.840.10008.5.1.4.1.1.88.59",
    "1.2.840.10008.5.1.4.1.1.88.65", "1.2.840.10008.5.1.4.1.1.88.67",
    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.481.1", "1.2.840.10008.5.1.4.1.1.481.2",
    "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.4",
    "1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.5.1.4.1.1.481.6",
    "1.2.840.10008.5.1.4.1.1.481.7", "1.2.840.10008.5.1.4.1.1.481.8",
    "1.2.840.10008.5.1.4.1.1.481.9", "1.2.840.10008.5.1.4.1.1.4.3",
    "1.3.12.2.1107.5.9.1",  # SiemensCSANonImageStorage
    # Philips private classes
    "1.3.46.670589.2.4.1.1", "1.3.46.670589.5.0.1", "1.3.46.670589.5.0.2", "1.3.46.670589.5.0.2.1",
    "1.3.46.670589.5.0.3", "1.3.46.670589.5.0.3.1", "1.3.46.670589.5.0.4", "1.3.46.670589.5.0.7",
    "1.3.46.670589.5.0.8", "1.3.46.670589.5.0.9", "1.3.46.670589.5.0.10",
    "1.3.46.670589.5.0.11", "1.3.46.670589.5.0.12", "1.3.46.670589.11.0.0.12.1",
    "1.3.46.670589.11.0.0.12.2", "1.3.46.670589.11.0.0.12.4", "1.3.46.670589.2.3.1.1",
    # "new additions to the DICOM standard", as numbers in the source
    "1.2.840.10008.5.1.4.1.1.78.5", "1.2.840.10008.5.1.4.1.1.9.5.1", "1.2.840.10008.5.1.4.1.1.130",
    "1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.88.68",
    "1.2.840.10008.5.1.4.1.1.11.6", "1.2.840.10008.5.1.4.1.1.11.10", "1.2.840.10008.5.1.4.1.1.11.9",
    "1.2.840.10008.5.1.4.1.1.11.11", "1.2.840.10008.5.1.4.1.1.78.3", "1.2.840.10008.5.1.4.1.1.81.1",
    "1.2.840.10008.5.1.4.1.1.128.1", "1.2.840.10008.5.1.4.1.1.88.69",
    "1.2.840.10008.5.1.4.1.1.11.8", "1.2.840.10008.5.1.4.1.1.88.71", "1.2.840.10008.5.1.4.1.1.78.7",
    "1.2.840.10008.5.1.4.1.1.66.6", "1.2.840.10008.5.1.4.1.1.79.1", "1.2.840.10008.5.1.4.1.1.13.1.5",
    "1.2.840.10008.5.1.4.1.1.14.1", "1.2.840.10008.5.1.4.34.10", "1.2.840.10008.5.1.4.1.1.30",
    "1.2.840.10008.5.1.4.1.1.77.1.5.6", "1.2.840.10008.5.1.4.1.1.9.6.1",
    "1.2.840.10008.5.1.4.1.1.66.5", "1.2.840.10008.5.1.4.1.1.481.10",
    "1.2.840.10008.5.1.4.1.1.88.74", "1.2.840.10008.5.1.4.1.1.77.1.5.5",
    "1.2.840.10008.5.1.4.1.1.77.1.5.7", "1.2.840.10008.5.1.4.1.1.104.2",
    "1.2.840.10008.5.1.4.1.1.88.75", "1.2.840.10008.5.1.4.1.1.4.4", "1.2.840.10008.5.1.4.1.1.78.2",
    "1.2.840.10008.5.1.4.1.1.2.2", "1.2.840.10008.5.1.4.1.1.77.1.5.8",
    "1.2.840.10008.5.1.4.1.1.78.1", "1.2.840.10008.5.1.4.1.1.80.1",
    "1.2.840.10008.5.1.4.1.1.481.11", "1.2.840.10008.5.1.4.1.1.14.2", "1.2.840.10008.5.1.4.1.1.11.5",
    "1.2.840.10008.5.1.4.1.1.77.1.6", "1.2.840.10008.5.1.4.1.1.131", "1.2.840.10008.5.1.4.1.1.11.7",
    "1.2.840.10008.5.1.4.1.1.200.2", "1.2.840.10008.5.1.4.1.1.13.1.4",
    "1.2.840.10008.5.1.4.1.1.9.4.2", "1.2.840.10008.5.1.4.1.1.88.73", "1.2.840.10008.5.1.4.34.7",
    "1.2.840.10008.5.1.4.1.1.78.4", "1.2.840.10008.5.1.4.1.1.78.8",
    "1.2.840.10008.5.1.4.1.1.104.3", "1.2.840.10008.5.1.4.1.1.68.1", "1.2.840.10008.5.1.4.1.1.90.1",
    "1.2.840.10008.5.1.4.1.1.78.6", "1.2.840.10008.5.1.4.1.1.68.2", "1.2.840.10008.5.1.4.1.1.6.2",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.72",
    "1.2.840.10008.5.1.4.1.1.82.1", "1.2.840.10008.5.1.4.1.1.88.70",
    "1.2.840.10008.5.1.4.1.1.88.35",
]

# DicomSCP.TSUIDS (XNAT 1.8): "accept just about anything".
RECEIVER_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.6.1", "1.2.840.10008.1.2.6.2",
]
VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
