#!/bin/bash
# Regenerates the intake CSV corpus (tests/data/csv/good and bad) byte for byte.
# printf writes the bytes that matter (BOM, CRLF, lone CR, form feed, NBSP, zero-width
# characters, Latin-1 and UTF-16 bytes). Each NAME.csv has a NAME.expect:
#   good/: "rows=N", "delimiter=X" (',', ';' or 'tab') and "ROW.FIELD=VALUE" lines
#          (FIELD: line kind accession patient_id study_date study_uid modality subject session)
#   bad/:  one "LINE:COLUMN:SUBSTRING" line per expected problem (the count must match exactly)
# Lines starting with '#' in .expect files are comments.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf good bad
mkdir -p good bad

w() { printf "$2" > "$1"; }             # w FILE PRINTF-FORMAT (no '%' in content)
x() { cat > "$1"; }                      # x FILE <<EOF (plain text expectations)
rep() { printf "$1%.0s" $(seq 1 "$2"); } # rep STRING N

# ----------------------------------------------------------------------------------- good
w good/excel_semicolon_bom_crlf.csv '\xEF\xBB\xBFAccession Number;Patient Name;Patient ID;Study Date;Subject;Session\r\nACC1001;"Doe; John";P0001;05/03/2024;;\r\n"ACC1002";"O""Brien, Mary";P0002;2024-03-06;SUBJ_02;SESS_02\r\nACC1003;"Smith\r\nJr.";P0003;20240307;;\r\nACC1004;Plain;P0004;;;\r\n'
x good/excel_semicolon_bom_crlf.expect <<'EOF'
# Excel "CSV UTF-8" with a ';' list separator: BOM, CRLF, quoted cells with ';', '""' and CRLF
rows=4
delimiter=;
1.line=2
1.kind=accession
1.accession=ACC1001
1.patient_id=P0001
1.study_date=20240305
1.subject=P0001
1.session=ACC1001
2.accession=ACC1002
2.study_date=20240306
2.subject=SUBJ_02
2.session=SESS_02
3.line=4
3.study_date=20240307
4.line=6
4.accession=ACC1004
4.study_date=
4.session=ACC1004
EOF

w good/dqr_batch.csv 'Study Instance UID,Accession Number,Study Date,Patient ID,Modality,Subject,Session\n1.2.840.113619.2.55.3.604688119.969.1268071029.320,ACC2001,20240110,PAT1,MR,Sub1,Sub1_MR1\n1.2.826.0.1.3680043.8.498.1,,20240111,PAT2,CT,Sub2,Sub2_CT1\n,ACC2003,20240112,PAT3,MR,,\n1.2.3.4.0.5,,,,,,\n'
x good/dqr_batch.expect <<'EOF'
# XNAT DQR batch CSV headings, unchanged
rows=4
delimiter=,
1.kind=study_uid
1.study_uid=1.2.840.113619.2.55.3.604688119.969.1268071029.320
1.accession=ACC2001
1.modality=MR
1.subject=Sub1
1.session=Sub1_MR1
2.kind=study_uid
2.patient_id=PAT2
2.session=Sub2_CT1
3.kind=accession
3.subject=PAT3
3.session=ACC2003
3.study_date=20240112
4.kind=study_uid
4.study_uid=1.2.3.4.0.5
4.subject=
4.session=
EOF

w good/tab_separated.csv 'AccessionNumber\tPatientID\tModality\tComment\nACC6001\tP1\tmr\t"has\ttab, and comma"\nACC6002\tP2\tCT\t\n'
x good/tab_separated.expect <<'EOF'
rows=2
delimiter=tab
1.accession=ACC6001
1.modality=MR
1.subject=P1
2.accession=ACC6002
2.modality=CT
2.line=3
EOF

w good/patient_date_ddmmyyyy.csv 'PID,Date,Modality\n12345,05/03/2024,MR\n12345,06.03.2024,CT\nA-77,31/12/2023,\n99 88,29/02/2024,\n'
x good/patient_date_ddmmyyyy.expect <<'EOF'
rows=4
delimiter=,
1.kind=patient_date
1.patient_id=12345
1.study_date=20240305
1.subject=12345
1.session=12345_20240305
1.modality=MR
2.study_date=20240306
2.session=12345_20240306
3.subject=A-77
3.session=A-77_20231231
4.patient_id=99 88
4.subject=99_88
4.session=99_88_20240229
EOF

w good/junk_chars.csv '\xEF\xBB\xBF\x0cAccession\xC2\xA0Number\xE2\x80\x8B, Patient ID\x0b ,Session\xE2\x81\xA0\r\n\xE2\x80\x8BACC\xE2\x80\x8C3001\xC2\xA0,\x0cP1,\xEF\xBB\xBFS1\r\n\x0c\r\nACC3002\x0c,P2\xE2\x80\x8D,\r\n,,\xC2\xA0\r\n\xE2\x80\x8B\xE2\x80\x8BACC3003\xE2\x80\x8B,P3\xC2\xA0\xC2\xA0,S3\x0c\r\n'
x good/junk_chars.expect <<'EOF'
# form feed, vertical tab, NBSP, zero-width space/non-joiner/joiner, word joiner, BOM in cells
rows=3
delimiter=,
1.line=2
1.accession=ACC3001
1.patient_id=P1
1.session=S1
2.line=4
2.accession=ACC3002
2.patient_id=P2
2.session=ACC3002
3.line=6
3.accession=ACC3003
3.patient_id=P3
3.subject=P3
3.session=S3
EOF

w good/embedded_newlines.csv 'Accession,Notes,Patient ID\nACC4001,"line one\nline two\nline three",P1\nACC4002,"a ""quoted"" word, and comma",P2\nACC4003,"crlf\r\ninside",P3\nACC4004,,P4\n'
x good/embedded_newlines.expect <<'EOF'
# newlines inside a quoted, ignored column; line numbers stay physical
rows=4
delimiter=,
1.line=2
1.patient_id=P1
2.line=5
2.accession=ACC4002
3.line=6
4.line=8
4.accession=ACC4004
4.patient_id=P4
EOF

w good/lone_cr_aliases.csv 'Acc_No,MRN,StudyDate,XNAT Subject,Experiment\rA-1,M1,2024-1-5,S_1,E_1\rA-2,M2,,,\r'
x good/lone_cr_aliases.expect <<'EOF'
# old Mac line ends (lone CR) and header aliases
rows=2
delimiter=,
1.line=2
1.accession=A-1
1.patient_id=M1
1.study_date=20240105
1.subject=S_1
1.session=E_1
2.line=3
2.subject=M2
2.session=A-2
EOF

w good/blank_lines_extra_columns.csv '\n\nStudy Description,Accession,Referring Physician,Study Date\n"Brain MRI",ACC5001,Dr. X,2024-03-05 00:00\n\n,,,\nChest,ACC5002,,\n   \n'
x good/blank_lines_extra_columns.expect <<'EOF'
# blank lines (also ",,," and spaces) are skipped, unknown columns ignored, Excel date+time
rows=2
delimiter=,
1.line=4
1.accession=ACC5001
1.study_date=20240305
2.line=7
2.accession=ACC5002
EOF

w good/single_column.csv 'Accession Number\nACC1\nACC2'
x good/single_column.expect <<'EOF'
# one column, no delimiter to detect, no final line break
rows=2
delimiter=,
1.accession=ACC1
2.accession=ACC2
2.line=3
EOF

# ------------------------------------------------------------------------------------ bad
w bad/empty.csv ''
x bad/empty.expect <<'EOF'
0:0:the file is empty
EOF

w bad/only_blank_junk.csv '\xEF\xBB\xBF\r\n\x0c\r\n ,\xC2\xA0\r\n'
x bad/only_blank_junk.expect <<'EOF'
0:0:the file is empty
EOF

w bad/header_only.csv 'Accession Number,Patient ID\r\n\r\n'
x bad/header_only.expect <<'EOF'
0:0:no data rows
EOF

w bad/no_key_column.csv 'Name,Comment\nJohn,x\n'
x bad/no_key_column.expect <<'EOF'
0:0:'Accession Number' (or Accession, ACC, Accession No, Acc No, Accession Nr, Acc Number)
EOF

w bad/patient_without_date_column.csv 'Patient ID,Modality\nP1,MR\n'
x bad/patient_without_date_column.expect <<'EOF'
0:0:no Study Date column
EOF

w bad/duplicate_header.csv 'Accession,Patient ID,ACC\nA1,P1,A1\n'
x bad/duplicate_header.expect <<'EOF'
1:3:as does column 1 ('Accession')
EOF

w bad/impossible_date.csv 'Patient ID,Study Date\nP1,2023-02-29\nP2,31/04/2024\nP3,20241301\n'
x bad/impossible_date.expect <<'EOF'
2:2:February 2023 has 28 days
3:2:April 2024 has 30 days
4:2:no month 13
EOF

w bad/unparseable_date.csv 'Accession,Study Date\nA1,March 5 2024\nA2,05/03/24\nA3,1899-12-31\nA4,2024-03-05 25:00\n'
x bad/unparseable_date.expect <<'EOF'
2:2:not a date in a known format
3:2:two-digit year
4:2:year 1899
5:2:not a date in a known format
EOF

w bad/duplicate_accession.csv 'Accession,Modality\nA1,MR\nA2,CT\nA1,CT\n'
x bad/duplicate_accession.expect <<'EOF'
4:1:same study as line 2
EOF

w bad/duplicate_uid.csv 'Study Instance UID,Session\n1.2.3,S1\n1.2.3,S2\n'
x bad/duplicate_uid.expect <<'EOF'
3:1:same study as line 2
EOF

w bad/duplicate_patient_date.csv 'PID,Date,Modality\nP1,20240101,MR\nP1,2024-01-01,mr\n'
x bad/duplicate_patient_date.expect <<'EOF'
3:1:same study as line 2
EOF

w bad/session_clash.csv 'Accession,Session\nA1,S1\nA2,X\nA3,s1\n'
x bad/session_clash.expect <<'EOF'
2:2:used again on line 4
4:2:already used on line 2
EOF

w bad/generated_session_clash.csv 'Patient ID,Study Date,Modality\nP1,20240101,MR\nP1,20240101,CT\n'
x bad/generated_session_clash.expect <<'EOF'
2:0:used again on line 3
3:0:'P1_20240101' (generated) is already used on line 2
EOF

w bad/invalid_session_label.csv 'Accession,Session\nA1,visit 1/a\nA2,ok_label\nA3,\xC3\x9Cber\n'
x bad/invalid_session_label.expect <<'EOF'
2:2:contains ' ' (space), '/'
4:2:contains 'Ü'
EOF

w bad/invalid_subject_label.csv 'Accession,Subject\nA1,sub.01\n'
x bad/invalid_subject_label.expect <<'EOF'
2:2:subject label 'sub.01' contains '.'
EOF

w bad/label_too_long.csv "Patient ID,Study Date,Session\nP1,20240101,$(rep s 65)\n$(rep p 60),20240101,\n"
x bad/label_too_long.expect <<'EOF'
2:3:is 65 characters long
3:3:longer than 64 characters
EOF

w bad/bad_uid.csv "StudyInstanceUID\n1.2.3.4.\n1..2\n1.2.abc\n$(rep 1 70)\n.1.2\n"
x bad/bad_uid.expect <<'EOF'
2:1:empty component
3:1:empty component
4:1:contains 'a'
5:1:at most 64
6:1:empty component
EOF

w bad/patient_without_date.csv 'Patient ID,Study Date,Accession\nP1,,\nP2,20240101,\n,,A3\n'
x bad/patient_without_date.expect <<'EOF'
2:2:patient ID 'P1' has no study date
EOF

w bad/row_without_key.csv 'Accession,Patient ID,Study Date,Modality\n,,,MR\nA2,,,\n,,20240101,\n'
x bad/row_without_key.expect <<'EOF'
2:0:row needs an accession number, or patient ID and study date, or a Study Instance UID
4:0:row needs an accession number
EOF

w bad/unterminated_quote.csv 'Accession,Notes\nA1,"fine"\nA2,"never closed\nA3,more\n'
x bad/unterminated_quote.expect <<'EOF'
3:2:never closed
EOF

w bad/text_after_quote.csv 'Accession,Notes\nA1,"abc"def\nA2,ok\n'
x bad/text_after_quote.expect <<'EOF'
2:2:after the closing
EOF

w bad/invalid_utf8.csv 'Accession,Patient Name\nA1,Ren\xe9\nA2,"multi\nline \xff"\n'
x bad/invalid_utf8.expect <<'EOF'
2:2:invalid UTF-8 (byte 0xE9)
4:2:invalid UTF-8 (byte 0xFF)
EOF

w bad/utf16.csv '\xff\xfeA\x00c\x00c\x00\n\x00'
x bad/utf16.expect <<'EOF'
0:0:UTF-16
EOF

w bad/xlsx.csv 'PK\x03\x04\x14\x00\x06\x00'
x bad/xlsx.expect <<'EOF'
0:0:not CSV
EOF

w bad/bad_modality.csv 'Accession,Modality\nA1,M R\nA2,MR-1\nA3,ABCDEFGHIJKLMNOPQ\n'
x bad/bad_modality.expect <<'EOF'
2:2:contains ' '
3:2:contains '-'
4:2:1-16 letters or digits
EOF

w bad/wildcard_key.csv "Accession,Patient ID,Study Date\nA1*,P1,\n,P?,20240101\nAB\\\\C,,\n$(rep 7 17),,\n"
x bad/wildcard_key.expect <<'EOF'
2:1:wildcard '*'
3:2:wildcard '?'
4:1:list of values
5:1:at most 16
EOF

w bad/multiline_then_errors.csv 'Accession,Notes,Study Date\nA1,"one\ntwo\nthree",20240101\nA2,"x\r\ny",2024-13-01\nA3,,20240230\n'
x bad/multiline_then_errors.expect <<'EOF'
# the date cell of line 5's row sits on line 6, after the quoted line break
6:3:no month 13
7:3:February 2024 has 29 days
EOF

w bad/too_many_cells.csv 'Accession,Description\nA1,Head, neck\n'
x bad/too_many_cells.expect <<'EOF'
2:3:but the header has 2
EOF

w bad/subject_collision.csv 'Patient ID,Study Date\n12.3,20240101\n12/3,20240102\n'
x bad/subject_collision.expect <<'EOF'
3:1:gives the subject label '12_3'
EOF

w bad/many_problems.csv 'Accession Number;Study Date;Session\nA1;2024-02-30;S1\nA1;;S2\nA3;;bad label\n;;\nA4;;S1\n'
x bad/many_problems.expect <<'EOF'
# all problems are collected, not just the first
2:2:February 2024 has 29 days
2:3:used again on line 6
3:1:same study as line 2
4:3:' ' (space)
6:3:already used on line 2
EOF
