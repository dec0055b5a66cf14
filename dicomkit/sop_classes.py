"""Storage SOP classes to propose when a C-GET cannot learn in advance which ones will come."""

from __future__ import annotations

from pynetdicom import sop_class as sc

COMMON_STORAGE: tuple[str, ...] = tuple(
    str(uid)
    for uid in (
        sc.CTImageStorage,
        sc.EnhancedCTImageStorage,
        sc.MRImageStorage,
        sc.EnhancedMRImageStorage,
        sc.ComputedRadiographyImageStorage,
        sc.DigitalXRayImageStorageForPresentation,
        sc.DigitalXRayImageStorageForProcessing,
        sc.DigitalMammographyXRayImageStorageForPresentation,
        sc.UltrasoundImageStorage,
        sc.UltrasoundMultiFrameImageStorage,
        sc.SecondaryCaptureImageStorage,
        sc.XRayAngiographicImageStorage,
        sc.XRayRadiofluoroscopicImageStorage,
        sc.NuclearMedicineImageStorage,
        sc.PositronEmissionTomographyImageStorage,
        sc.RTImageStorage,
        sc.RTDoseStorage,
        sc.RTStructureSetStorage,
        sc.RTPlanStorage,
        sc.BasicTextSRStorage,
        sc.EnhancedSRStorage,
        sc.ComprehensiveSRStorage,
        sc.KeyObjectSelectionDocumentStorage,
        sc.GrayscaleSoftcopyPresentationStateStorage,
        sc.EncapsulatedPDFStorage,
        sc.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        sc.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        sc.MultiFrameTrueColorSecondaryCaptureImageStorage,
        sc.VLPhotographicImageStorage,
        sc.BreastTomosynthesisImageStorage,
    )
)
